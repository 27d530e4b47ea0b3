"""The torch backend: modules compiled from the spec, gradients by autograd."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

import numpy as np

from mse_adapters import LossSpec

from .harness import Case, half_precision_sample

BACKENDS: list[Any] = []

if importlib.util.find_spec("torch") is not None:
    import torch

    import mse_adapters.torch as mt

    TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32,
                    "float16": torch.float16, "bfloat16": torch.bfloat16}

    class TorchBackend:
        name = "torch"
        dtypes = ("float64", "float32", "float16", "bfloat16")
        features = frozenset({"whiten", "precision", "gaussian_nll", "unit_norm"})

        def __init__(self, device: str = "cpu") -> None:
            self.device = device
            if device != "cpu":
                self.name = f"torch-{device}"

        def selected(self, case: Case, dtype: str) -> bool:
            """Every case in float64 and float32, a sample in half precision (CI time)."""
            return half_precision_sample(case, dtype)

        def tensor(self, x: np.ndarray | None, dtype: str, grad: bool) -> Any:
            if x is None:
                return None
            t = torch.tensor(x, dtype=TORCH_DTYPES[dtype], device=self.device)
            return t.requires_grad_(grad)

        def value_and_grad(
            self, spec: LossSpec, case: Case, dtype: str, wrt: Sequence[str]
        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
            args = {n: self.tensor(getattr(case, n), dtype, n in wrt)
                    for n in ("pred", "target", "weight", "sample_weight", "var")}
            mask = None if case.mask is None else torch.tensor(case.mask, device=self.device)
            structured: dict[str, Any] = {}
            for n in ("covariance", "precision"):  # host constants, given in float64
                if getattr(case, n) is not None:
                    structured[n] = torch.tensor(getattr(case, n), dtype=torch.float64, device=self.device)
            if case.scale_tril is not None:  # trainable (an nn.Parameter) when differentiated
                st = self.tensor(case.scale_tril, dtype, False)
                args["scale_tril"] = structured["scale_tril"] = (
                    torch.nn.Parameter(st) if "scale_tril" in wrt else st)
            out = mt.compile(spec, **structured)(args["pred"], args["target"], weight=args["weight"],
                                                 sample_weight=args["sample_weight"], mask=mask,
                                                 var=args["var"])
            ct = 1.0 if case.cotangent is None else torch.tensor(case.cotangent, dtype=out.dtype,
                                                                 device=self.device)
            inputs = [args[n] for n in wrt]
            grads = torch.autograd.grad((out * ct).sum(), inputs, allow_unused=True) if inputs else []
            result = {}
            for n, g, x in zip(wrt, grads, inputs):
                result[n] = np.zeros(x.shape) if g is None else g.detach().double().cpu().numpy()
            return out.detach().double().cpu().numpy(), result

    BACKENDS.append(TorchBackend())
    if torch.cuda.is_available():
        BACKENDS.append(TorchBackend("cuda"))
