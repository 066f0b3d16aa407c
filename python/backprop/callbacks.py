"""Callbacks run by fit after every epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from .network import Network


class Callback:
    """Override on_train_begin / on_epoch_end / on_train_end; return True from on_epoch_end to
    stop training after that epoch."""

    def on_train_begin(self, net: "Network") -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float], net: "Network") -> Optional[bool]:
        return None

    def on_train_end(self, net: "Network") -> None:
        pass


class LambdaCallback(Callback):
    """Wraps a plain function f(epoch, logs); returning True stops training."""

    def __init__(self, function: Callable[[int, dict[str, float]], Any]) -> None:
        self.function = function

    def on_epoch_end(self, epoch: int, logs: dict[str, float], net: "Network") -> Optional[bool]:
        return bool(self.function(epoch, logs))


def as_callback(item: Any) -> Callback:
    if isinstance(item, Callback):
        return item
    if callable(item):
        return LambdaCallback(item)
    raise TypeError(f"callbacks must be Callback objects or functions; got {type(item).__name__}")
