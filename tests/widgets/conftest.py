import pytest


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch, tmp_path):
    """Recent-checkpoint lists go to a temporary file, not the user's settings."""
    from qtpy.QtCore import QSettings

    from napari_unetseg.widgets import model_panel

    path = str(tmp_path / "settings.ini")
    monkeypatch.setattr(model_panel, "settings",
                        lambda: QSettings(path, QSettings.Format.IniFormat))


@pytest.fixture
def errors(monkeypatch):
    """Collect the messages of error notifications shown to the user."""
    import napari.utils.notifications as notes

    seen = []
    monkeypatch.setattr(notes, "show_error", lambda msg: seen.append(msg))
    return seen


def settle(panel, timeout: float = 60.0) -> None:
    """Let Qt run until ``panel``'s background job (reading an image, exporting) is done."""
    import time

    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while panel.busy:
        if time.monotonic() > end:
            raise TimeoutError(f"{type(panel).__name__} still busy after {timeout} s")
        QApplication.processEvents()
        time.sleep(0.01)
