"""From a deployment to the exact ``vllm serve`` command line: pure, so it can be checked."""

from __future__ import annotations

from .._contract import EngineSpec
from .._supervisor import free_port
from ._options import VllmOptions

__all__ = ["launch_command", "options_of", "served_model_name"]


def options_of(spec: EngineSpec) -> VllmOptions:
    options = spec.options if spec.options is not None else VllmOptions()
    if not isinstance(options, VllmOptions):
        raise TypeError(f"the vllm engine takes VllmOptions, not {type(options).__name__}")
    return options


def served_model_name(spec: EngineSpec) -> str:
    return options_of(spec).served_model_name or spec.name


def _check_attach(spec: EngineSpec, options: VllmOptions) -> None:
    defaults = VllmOptions()
    changed = [
        name
        for name in VllmOptions.__struct_fields__
        if name != "client" and getattr(options, name) != getattr(defaults, name)
    ]
    if changed:
        raise ValueError(
            f"deployment {spec.name!r} attaches to {spec.url}, so Roundhouse launches "
            f"nothing and its vllm settings ({', '.join(changed)}) would be ignored; "
            "remove them, or remove `url` to launch vLLM"
        )


def _flags(spec: EngineSpec, options: VllmOptions, model: str, port: int) -> list[str]:
    argv = [
        "serve",
        model,
        "--served-model-name",
        served_model_name(spec),
        "--host",
        options.host,
        "--port",
        str(port),
    ]
    # Only what differs from vLLM's own defaults, so the line reads like a hand-written one.
    valued: list[tuple[str, object, object]] = [
        ("--tensor-parallel-size", options.tensor_parallel_size, 1),
        ("--pipeline-parallel-size", options.pipeline_parallel_size, 1),
        ("--quantization", options.quantization, "auto"),
        ("--dtype", options.dtype, None),
        ("--gpu-memory-utilization", options.gpu_memory_utilization, None),
        ("--max-model-len", options.max_model_len, None),
        ("--distributed-executor-backend", options.distributed_executor_backend, None),
    ]
    for flag, value, skip in valued:
        if value is not None and value != skip:
            argv += [flag, str(value)]
    if options.tool_call_parser is not None:
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", options.tool_call_parser]
    if options.reasoning_parser is not None:
        argv += ["--reasoning-parser", options.reasoning_parser]
    if options.enforce_eager:
        argv.append("--enforce-eager")
    if options.trust_remote_code:
        argv.append("--trust-remote-code")
    return argv


def _substitute(arg: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        arg = arg.replace(placeholder, value)
    return arg


def launch_command(
    spec: EngineSpec, *, port: int | None = None
) -> tuple[list[str], dict[str, str]] | None:
    """The argv and the environment additions that launch this deployment's server.

    None when the deployment attaches to a ``url``. ``port`` is used when the options
    name none; with neither, a free port is picked now, so the command is exact only
    for this call. Raises ValueError for a deployment that cannot be launched.
    """
    options = options_of(spec)
    if spec.url is not None:
        _check_attach(spec, options)
        return None
    if spec.model is None:
        raise ValueError(
            f"deployment {spec.name!r} needs `model` (a Hugging Face id or a local "
            "directory) for Roundhouse to launch vLLM, or `url` to attach to a running server"
        )
    if port is None:
        port = options.port if options.port is not None else free_port(options.host)
    argv = list(options.executable)
    if options.flags == "vllm":
        argv += _flags(spec, options, spec.model, port)
    values = {
        "{host}": options.host,
        "{port}": str(port),
        "{model}": spec.model,
        "{served_model_name}": served_model_name(spec),
    }
    argv += [_substitute(arg, values) for arg in options.extra_args]
    env: dict[str, str] = {}
    if options.gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in options.gpus)
    env.update(options.env)
    return argv, env
