"""get_params / set_params from the constructor's signature (the scikit-learn estimator protocol),
so they behave the same whether or not scikit-learn is installed."""

from __future__ import annotations

import inspect
from typing import Any


class ParamsMixin:
    """The constructor stores each argument unchanged under its own name; these read and write
    them. Nested estimators are addressed as 'name__param', as in scikit-learn."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        init = cls.__init__
        if init is object.__init__:
            return []
        names = []
        for parameter in inspect.signature(init).parameters.values():
            if parameter.name == "self":
                continue
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise RuntimeError(f"{cls.__name__}.__init__ must name every parameter "
                                   f"(no *args or **kwargs) for get_params to find them")
            names.append(parameter.name)
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters and their values; with deep, also those of parameters
        that are estimators themselves, as 'name__param'."""
        params: dict[str, Any] = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                for key, inner in value.get_params().items():
                    params[f"{name}__{key}"] = inner
            params[name] = value
        return params

    def set_params(self, **params: Any) -> "ParamsMixin":
        """Set parameters by name (nested ones as 'name__param'); returns self. Values are
        stored as given and checked by the next fit."""
        if not params:
            return self
        valid = self.get_params(deep=True)
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, separator, inner = key.partition("__")
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                                 f"Valid parameters are: {self._get_param_names()!r}.")
            if separator:
                nested.setdefault(name, {})[inner] = value
            else:
                setattr(self, name, value)
                valid[name] = value
        for name, inner_params in nested.items():
            valid[name].set_params(**inner_params)
        return self
