"""`check_component(cls)`: the component contract as runnable checks, for built-ins and plugins alike.

Call it from a test: it raises `AssertionError` naming the first broken rule, and returns the list
of checks that ran. It builds the component from its default params (or `params`), feeds it
synthetic tensors of the right ports on two clip lengths, and checks what comes out.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ValidationError

from thkit.core.component import KINDS, Component, GraphContext, Params
from thkit.core.ports import VIDEO, Accepts, Audio, Frames, Landmarks, Pose, Port, Seq
from thkit.core.timebase import Timeline, as_rate

SEQUENCE_KINDS = ("encoder", "fusion", "conditioning")  # called as module(inputs, timeline)
CLIP_SECONDS = (Fraction(2), Fraction(731, 1000))  # a round length and an awkward one


def check_component(
    cls: type[Component],
    *,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Port] | None = None,
    context: GraphContext | None = None,
    check_import: bool = True,
) -> list[str]:
    """Run the contract checks on a component class; returns the names of the checks passed."""
    passed: list[str] = []
    context = context or GraphContext()

    _require(isinstance(cls, type) and issubclass(cls, Component), f"{cls!r} is not a thkit Component subclass")
    _require(getattr(cls, "kind", None) in KINDS, f"{cls.__name__}.kind must be one of {KINDS}")
    passed.append("is a Component with a kind")

    _check_params_model(cls)
    passed.append("Params forbid unknown keys and are frozen")
    try:
        parsed = cls.Params.model_validate(dict(params or {}))
    except ValidationError as error:
        raise AssertionError(f"{cls.__name__}.Params rejects {'defaults' if params is None else params}: {error}") from None
    cls.Params.model_json_schema()
    passed.append("Params validate and have a JSON schema")

    if check_import:
        _check_imports_without_torch(cls)
        passed.append("imports without torch")

    ports = dict(inputs) if inputs is not None else _example_inputs(cls, context)
    for name, port in ports.items():
        accepts = cls.accepts(name)
        _require(accepts is not None, f"{cls.__name__} has no input '{name}'")
        mismatches = accepts.mismatches(port, context.video_fps)
        _require(not mismatches, f"example input '{name}' does not fit: {mismatches}")
    component = cls(parsed, ports, context)
    outputs = component.outputs()
    _require(isinstance(outputs, dict) and outputs, f"{cls.__name__}.outputs() must return a non-empty dict of ports")
    for name, port in outputs.items():
        _require(isinstance(port, Port), f"output '{name}' is {port!r}, not a Port")
    passed.append("computes output ports")

    import torch
    from safetensors.torch import save as save_safetensors

    module = component.build()
    _require(isinstance(module, torch.nn.Module), f"{cls.__name__}.build() must return a torch.nn.Module")
    save_safetensors({k: v.contiguous() for k, v in module.state_dict().items()})
    passed.append("builds a module whose state saves as safetensors")

    if cls.kind in SEQUENCE_KINDS:
        module.eval()
        generator = torch.Generator().manual_seed(0)
        for seconds in CLIP_SECONDS:
            timeline = Timeline(int(seconds * context.sample_rate), context.sample_rate)
            tensors = {name: _example_tensor(port, timeline, generator) for name, port in ports.items()}
            with torch.no_grad():
                first = module(tensors, timeline)
                second = module(tensors, timeline)
            _require(set(first) == set(outputs), f"module returned {sorted(first)}, ports declare {sorted(outputs)}")
            for name, port in outputs.items():
                tensor = first[name]
                expected = _expected_shape(port, timeline)
                _require(tuple(tensor.shape) == expected, f"output '{name}' on a {float(seconds)} s clip has shape {tuple(tensor.shape)}, port {port} needs {expected}")
                _require(tensor.dtype.is_floating_point, f"output '{name}' is {tensor.dtype}, not floating point")
                _require(bool(torch.isfinite(tensor).all()), f"output '{name}' holds NaN or infinite values")
                _require(torch.equal(tensor, second[name]), f"output '{name}' differs between two eval-mode runs")
        passed.append("outputs match their ports exactly on two clip lengths, finite and deterministic")
    return passed


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _check_params_model(cls: type[Component]) -> None:
    model = getattr(cls, "Params", None)
    _require(isinstance(model, type) and issubclass(model, BaseModel), f"{cls.__name__}.Params must be a pydantic model")
    _require(issubclass(model, Params), f"{cls.__name__}.Params should subclass thkit.core.Params")
    config = model.model_config
    _require(config.get("extra") == "forbid", f"{cls.__name__}.Params must set extra='forbid'")
    _require(bool(config.get("frozen")), f"{cls.__name__}.Params must be frozen")
    try:
        model.model_validate({"__not_a_param__": 1})
    except ValidationError:
        return
    raise AssertionError(f"{cls.__name__}.Params accepted an unknown key")


def _check_imports_without_torch(cls: type[Component]) -> None:
    probe = f"import importlib, sys; importlib.import_module({cls.__module__!r}); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    _require(result.returncode == 0, f"importing {cls.__module__} failed: {result.stderr.strip()[-500:]}")
    _require(
        result.stdout.strip() == "False",
        f"importing {cls.__module__} imports torch; import it inside build() so that validation stays fast",
    )


def _example_inputs(cls: type[Component], context: GraphContext) -> dict[str, Port]:
    declared = {name: accepts for name, accepts in cls.inputs.items()}
    if cls.variadic_input is not None:
        declared.update({"first": cls.variadic_input, "second": cls.variadic_input})
    return {name: _example_port(accepts, context, index) for index, (name, accepts) in enumerate(declared.items())}


def _example_port(accepts: Accepts, context: GraphContext, index: int) -> Port:
    # Vary widths and rates between inputs so that alignment and concatenation are exercised.
    fps = context.video_fps if accepts.fps == VIDEO else as_rate(accepts.fps) if accepts.fps is not None else (Fraction(50), Fraction(100), Fraction(30000, 1001))[index % 3]
    dim = accepts.dim if accepts.dim is not None else 8 + 4 * index
    if accepts.port is Audio:
        return Audio(accepts.sample_rate or context.sample_rate)
    if accepts.port is Seq:
        return Seq(dim, fps)
    if accepts.port is Landmarks:
        return Landmarks(accepts.dim or 68, accepts.dims or 3, fps if accepts.fps is not None else context.video_fps)
    if accepts.port is Pose:
        return Pose(context.video_fps)
    if accepts.port is Frames:
        return Frames(32, 32, context.video_fps)
    raise AssertionError(f"no example for port type {accepts.port.__name__}; pass inputs=")


def _example_tensor(port: Port, timeline: Timeline, generator):
    import torch

    if isinstance(port, Audio):
        samples = timeline.n_samples * port.sample_rate // timeline.sample_rate
        return 0.1 * torch.randn(samples, generator=generator)
    frames = timeline.frames(port.fps)
    if isinstance(port, Seq):
        return torch.randn(frames, port.dim, generator=generator)
    if isinstance(port, Landmarks):
        return torch.randn(frames, port.n, port.dims, generator=generator)
    if isinstance(port, Pose):
        return torch.eye(4).expand(frames, 4, 4).clone()
    if isinstance(port, Frames):
        return torch.rand(frames, port.height, port.width, 3, generator=generator)
    raise AssertionError(f"no example tensor for {port}")


def _expected_shape(port: Port, timeline: Timeline) -> tuple[int, ...]:
    if isinstance(port, Audio):
        return (timeline.n_samples * port.sample_rate // timeline.sample_rate,)
    frames = timeline.frames(port.fps)
    if isinstance(port, Seq):
        return (frames, port.dim)
    if isinstance(port, Landmarks):
        return (frames, port.n, port.dims)
    if isinstance(port, Pose):
        return (frames, 4, 4)
    if isinstance(port, Frames):
        return (frames, port.height, port.width, 3)
    raise AssertionError(f"no expected shape for {port}")
