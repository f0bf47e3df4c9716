"""The Segment group's parameters: a magicgui form (layer picker, choices, numbers)."""

from __future__ import annotations

from .common import follow_layers, layer_picker
from .session import ImageView

SCOPES = ("Current plane", "Whole stack")
STACK_MODES = {
    "2d": "Each plane on its own, with its own ids",
    "stitch": "One id per nucleus through Z: each plane's objects are linked with the "
              "overlapping objects of the plane above (IoU 0.25 or more)",
}
DIAMETER_TIP = (
    "Typical nucleus diameter in pixels. 'auto' estimates it for each image (a stack: on "
    "its middle plane); the image is rescaled so that its nuclei have the size the model "
    "was trained at, and the labels come back on the image's own pixels. Type a value when "
    "the estimate is off."
)


class SegmentForm:
    """What to segment and how: image, planes, linking through Z and time, diameter."""

    def __init__(self, viewer):
        from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox
        from napari.layers import Image

        self.image_picker = layer_picker(viewer, Image, "Image", "Image layer to segment")
        self.scope = ComboBox(label="Planes", choices=SCOPES,
                              tooltip="For stacks: the plane on screen, or every plane")
        self.stack_mode = ComboBox(
            label="Through Z", choices=list(STACK_MODES), value="2d",
            tooltip="\n".join(f"{k}: {v}" for k, v in STACK_MODES.items()))
        self.track = CheckBox(text="Link ids over time",
                              tooltip="Each object keeps the id of the object it overlaps "
                                      "most in the previous frame")
        self.diameter_box = FloatSpinBox(label="Nucleus diameter", min=0.0, max=1000.0,
                                         step=1.0, tooltip=DIAMETER_TIP)
        self.diameter_box.native.setSpecialValueText("auto")  # 0 means "estimate it"
        self.diameter_box.native.setSuffix(" px")
        self.show_maps = CheckBox(text="Also show probability maps")
        self.container = Container(widgets=[self.image_picker, self.scope, self.stack_mode,
                                            self.track, self.diameter_box, self.show_maps])
        self.image_picker.changed.connect(lambda _: self.update_stack_controls())

    @property
    def native(self):
        return self.container.native

    def layers_changed(self, event=None) -> None:
        """Follow the viewer's layer list (a newly opened image becomes the choice)."""
        follow_layers(self.image_picker, event)
        self.update_stack_controls()

    def view(self) -> ImageView | None:
        """How the chosen image splits into planes (None if none is chosen or unsupported)."""
        if self.image_picker.value is None:
            return None
        try:
            return ImageView.of(self.image_picker.value)
        except ValueError:
            return None

    def update_stack_controls(self) -> None:
        """The stack choices only mean something for stacks."""
        view = self.view()
        stack = bool(view is not None and view.stack_shape)
        self.scope.enabled = stack
        self.scope.tooltip = ("For stacks: the plane on screen, or every plane" if stack
                              else "The chosen image is a single plane")
        self.stack_mode.visible = stack
        self.track.visible = stack

    def diameter(self) -> float | None:
        """The nucleus diameter typed in (px), or None for automatic."""
        value = float(self.diameter_box.value)
        return value if value > 0 else None

    def linking(self, view: ImageView) -> dict:
        """How the run links ids: ``stack_mode`` and ``track`` of a SegmentationState."""
        stack = bool(view.stack_shape)
        return {"stack_mode": self.stack_mode.value if stack else "2d",
                "track": bool(self.track.value and stack)}

    def model_loaded(self, predictor) -> None:
        """A model without a canonical diameter cannot use one."""
        sized = bool(predictor.diameter)
        self.diameter_box.enabled = sized
        self.diameter_box.tooltip = (DIAMETER_TIP if sized else
                                     "This model works at the image's own size (no diameter)")
