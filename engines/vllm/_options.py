from __future__ import annotations

from typing import Literal

import msgspec

from ..upstream import UpstreamOptions

__all__ = ["VllmOptions"]


class VllmOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``vllm:`` block of a deployment.

    ``client`` is how Roundhouse talks to the server, launched or attached. Every
    other key is about launching ``vllm serve``, so a deployment with a ``url``
    (attached to a running server) must leave them out.
    """

    # The openai engine's settings (api_key, timeouts, extra_body, ...).
    client: UpstreamOptions = msgspec.field(default_factory=UpstreamOptions)

    # The name vLLM serves the model under; defaults to the deployment's name.
    served_model_name: str | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    # "auto" passes nothing, so vLLM reads the method from the checkpoint's config.
    quantization: Literal["awq", "gptq", "fp8", "auto"] | None = None
    dtype: str | None = None
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    enforce_eager: bool = False
    trust_remote_code: bool = False
    distributed_executor_backend: Literal["ray", "mp"] | None = None
    # vLLM's own tool-call parser for `tool_choice: auto` (hermes, mistral,
    # llama3_json, qwen3_coder, ...): launches with --enable-auto-tool-choice
    # --tool-call-parser. `required` and named choices need none.
    tool_call_parser: str | None = None
    # vLLM's reasoning parser (deepseek_r1, qwen3, ...): it then sends the thinking
    # apart, which Roundhouse relays as reasoning_content.
    reasoning_parser: str | None = None
    # Physical GPU ids, exported as CUDA_VISIBLE_DEVICES; one per TP x PP rank.
    gpus: tuple[int, ...] | None = None
    # Appended after every generated flag; {host}, {port}, {model} and
    # {served_model_name} are replaced by their values.
    extra_args: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    # None picks a free port when the engine is built.
    port: int | None = None
    executable: tuple[str, ...] = ("vllm",)
    # "none" runs `executable + extra_args` alone: for a server with vLLM's API but
    # another command line (SGLang, llama.cpp's server in tests).
    flags: Literal["vllm", "none"] = "vllm"
    health_path: str = "/health"
    # Loading a large model (download, compile, CUDA graphs) takes minutes.
    startup_timeout: float = 900.0
    restart_delay: float = 1.0
    restart_delay_max: float = 60.0
    stop_timeout: float = 10.0
    env: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("tensor_parallel_size", "pipeline_parallel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.gpus is not None:
            ranks = self.tensor_parallel_size * self.pipeline_parallel_size
            if len(self.gpus) != ranks:
                raise ValueError(
                    f"gpus lists {len(self.gpus)} GPU(s), but tensor_parallel_size x "
                    f"pipeline_parallel_size = {self.tensor_parallel_size} x "
                    f"{self.pipeline_parallel_size} = {ranks} needs exactly {ranks}"
                )
            if len(set(self.gpus)) != len(self.gpus) or min(self.gpus) < 0:
                raise ValueError("gpus must be distinct GPU ids >= 0")
            if "CUDA_VISIBLE_DEVICES" in self.env:
                raise ValueError("set gpus or env.CUDA_VISIBLE_DEVICES, not both")
        util = self.gpu_memory_utilization
        if util is not None and not 0 < util <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError("max_model_len must be >= 1")
        if self.port is not None and not 0 < self.port < 65536:
            raise ValueError("port must be in 1..65535")
        if not self.executable:
            raise ValueError("executable must name a command")
        if not self.health_path.startswith("/"):
            raise ValueError("health_path must start with /")
        if self.startup_timeout <= 0 or self.stop_timeout < 0:
            raise ValueError("startup_timeout must be > 0 and stop_timeout >= 0")
        if not 0 < self.restart_delay <= self.restart_delay_max:
            raise ValueError("restart_delay must be > 0 and <= restart_delay_max")
