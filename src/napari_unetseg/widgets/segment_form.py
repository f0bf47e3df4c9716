"""The Segment group's parameters: a magicgui form (layer picker, choices, numbers)."""

from __future__ import annotations

from napari_unetseg.core.base.choices import STACK_MODES

from .common import follow_layers, layer_picker
from .session import ImageView

SCOPES = ("Current plane", "Whole stack")
#: What each stack mode means to a user (the drop-down's tooltip); the modes are core's.
STACK_MODE_HELP = {
    "3d": "One id per nucleus: the model's maps from XY, XZ and YZ views (stretched by the "
          "voxel size) are averaged and one 3D watershed separates the nuclei (the most "
          "accurate; the whole stack)",
    "stitch": "One id per nucleus through Z: each plane's objects are linked with the "
              "overlapping objects of the plane above (IoU 0.25 or more)",
    "2d": "Each plane on its own, with its own ids (planes that are not one volume)",
}
VOXEL_TIP = ("Voxel size in µm (Z step, then Y and X pixel size), read from the image's file "
             "or its layer scale when they record one. Its Z / XY ratio stretches the XZ and "
             "YZ views of the 3d mode; the image and labels layers are scaled with it.")
DIAMETER_TIP = (
    "Typical nucleus diameter in pixels. 'auto' estimates it for each image (a stack: on "
    "its middle plane); the image is rescaled so that its nuclei have the size the model "
    "was trained at, and the labels come back on the image's own pixels. Type a value when "
    "the estimate is off."
)


CHANNEL_NAMES = ("c", "ch", "channel", "channels")


def layer_channel_axis(layer) -> int | None:
    """The channel axis of an image layer, from its axis labels or its file's metadata
    (ImageJ, OME-TIFF); None when neither says (napari's own reader opens a CYX TIFF as a
    stack of planes)."""
    from napari_unetseg.core.io.images import stored_axes

    if layer.rgb:
        return None
    data = layer.data[0] if layer.multiscale else layer.data
    for i, name in enumerate(getattr(layer, "axis_labels", ()) or ()):
        if str(name).lower() in CHANNEL_NAMES:
            return i
    path = getattr(getattr(layer, "source", None), "path", None)
    axes = stored_axes(path) if path else None
    if axes and len(axes) == data.ndim and "C" in axes:
        return axes.index("C")
    return None


def layer_voxel_size(layer) -> tuple[float, float, float]:
    """The voxel size of an image layer: its scale when set, else its file's, else 1."""
    from pathlib import Path

    from napari_unetseg.core.io.images import read_voxel_size

    # napari leaves an RGB layer's colour axis out of its dimensions and scale.
    scale = [float(v) for v in layer.scale[-3:]] if layer.ndim >= 3 else []
    if len(scale) == 3 and any(abs(v - 1) > 1e-9 for v in scale):
        return tuple(scale)
    path = getattr(getattr(layer, "source", None), "path", None)
    found = read_voxel_size(Path(path)) if path else None
    return found or (1.0, 1.0, 1.0)


class SegmentForm:
    """What to segment and how: image, planes, linking through Z and time, diameter."""

    def __init__(self, viewer):
        from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, SpinBox
        from napari.layers import Image

        self.image_picker = layer_picker(viewer, Image, "Image", "Image layer to segment")
        # Choices from a function: magicgui resets them when the panel is docked.
        self.channel_axis = ComboBox(
            label="Channels", choices=lambda _w: self._channel_choices(),
            tooltip="The axis that holds channels (read from the file or the layer when they "
                    "say); the nuclear channel alone is segmented")
        self.channel = SpinBox(label="Nuclear channel", min=1, max=1, value=1,
                               tooltip="The channel with the nuclear stain (1 is the first)")
        self.channel_warning = Label(value="")
        self.channel_warning.native.setWordWrap(True)
        self.channel_warning.native.setStyleSheet("color: #ffb060")
        self.scope = ComboBox(label="Planes", choices=SCOPES,
                              tooltip="For stacks: the plane on screen, or every plane")
        self.stack_mode = ComboBox(
            label="Through Z", choices=[m for m in STACK_MODES if m in STACK_MODE_HELP],
            value="3d", tooltip="\n".join(f"{m}: {STACK_MODE_HELP[m]}" for m in STACK_MODES
                                          if m in STACK_MODE_HELP))
        self.voxel = [FloatSpinBox(min=0.001, max=1000.0, step=0.1, value=1.0,
                                   tooltip=VOXEL_TIP) for _ in "ZYX"]
        for box in self.voxel:
            box.native.setDecimals(3)
        self.voxel_row = Container(layout="horizontal", widgets=self.voxel,
                                   label="Voxel Z, Y, X (µm)", labels=False)
        self.voxel_row.margins = (0, 0, 0, 0)
        self.track = CheckBox(text="Link ids over time",
                              tooltip="Each object keeps the id of the object it overlaps "
                                      "most in the previous frame")
        self.diameter_box = FloatSpinBox(label="Nucleus diameter", min=0.0, max=1000.0,
                                         step=1.0, tooltip=DIAMETER_TIP)
        self.diameter_box.native.setSpecialValueText("auto")  # 0 means "estimate it"
        self.diameter_box.native.setSuffix(" px")
        self.show_maps = CheckBox(text="Also show probability maps")
        self.container = Container(widgets=[self.image_picker, self.channel_axis, self.channel,
                                            self.channel_warning, self.scope, self.stack_mode,
                                            self.voxel_row, self.track, self.diameter_box,
                                            self.show_maps])
        self.stack_mode.changed.connect(lambda _: self.update_stack_controls())
        self.channel_axis.changed.connect(lambda _: self._channel_axis_changed())
        self.channel.changed.connect(lambda _: self.update_stack_controls())
        self.image_picker.changed.connect(lambda _: self._image_changed())
        self._image_changed()  # the image already chosen when the panel opens

    @property
    def native(self):
        return self.container.native

    def layers_changed(self, event=None) -> None:
        """Follow the viewer's layer list (a newly opened image becomes the choice)."""
        follow_layers(self.image_picker, event)
        self.update_stack_controls()

    def view(self) -> ImageView | None:
        """How the chosen image splits into planes (None if none is chosen or unsupported)."""
        try:
            return self.checked_view()
        except ValueError:
            return None

    def checked_view(self) -> ImageView | None:
        """:meth:`view`, with a one-line ValueError when the image cannot be segmented."""
        if self.image_picker.value is None:
            return None
        axis = self.channel_axis.value
        return ImageView.of(self.image_picker.value, axis, int(self.channel.value) - 1)

    def _image_changed(self) -> None:
        layer = self.image_picker.value
        self._offer_channels(layer)
        self.update_stack_controls()
        if layer is not None:
            self.set_voxel_size(layer_voxel_size(layer))

    def _channel_choices(self) -> list:
        """Channel axes to choose from: the leading axes of a non-RGB image with 2 to 8
        entries."""
        choices: list = [("none", None)]
        picker = getattr(self, "image_picker", None)  # None while the form is being built
        layer = None if picker is None else picker.value
        if layer is not None and not layer.rgb:
            data = layer.data[0] if layer.multiscale else layer.data
            choices += [(f"axis {i} ({n})", i) for i, n in enumerate(data.shape[:-2])
                        if 2 <= n <= 8]
        return choices

    def _offer_channels(self, layer) -> None:
        """Offer the image's possible channel axes; the one its file or layer names is
        chosen."""
        self.channel_axis.reset_choices()
        known = layer_channel_axis(layer) if layer is not None else None
        offered = [c[1] for c in self._channel_choices()]
        self.channel_axis.value = known if known in offered else None
        self._channel_axis_changed()

    def _channel_axis_changed(self) -> None:
        layer, axis = self.image_picker.value, self.channel_axis.value
        if axis is not None and layer is not None:
            data = layer.data[0] if layer.multiscale else layer.data
            self.channel.max = int(data.shape[axis])
        self.update_stack_controls()

    def update_stack_controls(self) -> None:
        """The stack choices only mean something for stacks; 3d always takes all planes."""
        layer = self.image_picker.value
        several = len(self.channel_axis.choices) > 1
        self.channel_axis.visible = several
        self.channel.visible = several and self.channel_axis.value is not None
        self.channel_warning.value = self._channel_hint(layer)
        self.channel_warning.visible = bool(self.channel_warning.value)
        view = self.view()
        stack = bool(view is not None and view.stack_shape)
        whole = stack and self.stack_mode.value == "3d"
        self.scope.enabled = stack and not whole
        self.scope.tooltip = ("3d segments the whole stack" if whole else
                              "For stacks: the plane on screen, or every plane" if stack
                              else "The chosen image is a single plane")
        self.stack_mode.visible = stack
        self.voxel_row.visible = stack
        # One extra axis is Z for 3d (nothing to link over time), time otherwise.
        self.track.visible = stack and not (whole and len(view.stack_shape) == 1)

    def _channel_hint(self, layer) -> str:
        """A warning for a "stack" of 2 to 4 planes that may be channels."""
        if layer is None or layer.rgb or self.channel_axis.value is not None:
            return ""
        data = layer.data[0] if layer.multiscale else layer.data
        if data.ndim == 3 and 2 <= data.shape[0] <= 4:
            return (f"Only {data.shape[0]} planes: if they are channels (a nuclear stain and "
                    "others), choose Channels: axis 0 and the nuclear channel.")
        return ""

    def voxel_size(self) -> tuple[float, float, float]:
        """The voxel size (Z, Y, X) in µm in the boxes."""
        z, y, x = (float(b.value) for b in self.voxel)
        return z, y, x

    def set_voxel_size(self, zyx) -> None:
        for box, v in zip(self.voxel, zyx):
            box.value = float(v)

    def diameter(self) -> float | None:
        """The nucleus diameter typed in (px), or None for automatic."""
        value = float(self.diameter_box.value)
        return value if value > 0 else None

    def linking(self, view: ImageView) -> dict:
        """How the run links ids: ``stack_mode`` and ``track`` of a SegmentationState."""
        stack = bool(view.stack_shape)
        if stack and self.stack_mode.value == "3d":
            # Each time point is one 3D volume; only a TZYX image has time to link over.
            return {"stack_mode": "3d",
                    "track": bool(self.track.value and view.label_axes == "TZYX")}
        return {"stack_mode": self.stack_mode.value if stack else "2d",
                "track": bool(self.track.value and stack)}

    def model_loaded(self, predictor) -> None:
        """A model without a canonical diameter cannot use one."""
        sized = bool(predictor.diameter)
        self.diameter_box.enabled = sized
        self.diameter_box.tooltip = (DIAMETER_TIP if sized else
                                     "This model works at the image's own size (no diameter)")
