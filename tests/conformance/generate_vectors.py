"""Write ``vectors.json``: named input vectors with their expected value and gradients.

The expected numbers come from a deliberately naive, independent implementation: plain
Python loops over a (B, d) table, ``math`` functions, and gradients derived by hand for
each penalty, reduction and finalizer. It shares no code with ``mse_adapters`` beyond the
spec's field names, so the committed vectors check the pipeline's semantics (docs/design.md, "Semantics"),
not just its agreement with itself.

Run ``python -m tests.conformance.generate_vectors`` to rebuild the file;
``test_vectors.py`` rebuilds it in memory and diffs it with the committed one.
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

PATH = pathlib.Path(__file__).with_name("vectors.json")
NAN = float("nan")


# -- penalties and their derivatives (d|x|/dx = 0 at 0) ------------------------------------
def rho(spec: dict[str, Any], r: float) -> tuple[float, float]:
    p = spec.get("penalty", "square")
    a = abs(r)
    sgn = (r > 0) - (r < 0)
    if p == "square":
        return r * r, 2 * r
    if p == "abs" or (p == "smooth_l1" and spec.get("beta", 1.0) == 0):
        return a, float(sgn)
    if p == "huber":
        d = spec.get("delta", 1.0)
        return (0.5 * r * r, r) if a <= d else (d * (a - 0.5 * d), d * sgn)
    if p == "smooth_l1":
        b = spec.get("beta", 1.0)
        return (0.5 * r * r / b, r / b) if a < b else (a - 0.5 * b, float(sgn))
    if p == "log_cosh":
        return math.log(math.cosh(r)), math.tanh(r)
    if p == "expectile":
        t = spec.get("tau", 0.5)
        k = (1 - t) if r > 0 else t
        return k * r * r, 2 * k * r
    if p == "quantile":  # pinball: over-prediction costs 1 - tau, under-prediction tau
        t = spec.get("tau", 0.5)
        k = (1 - t) if r > 0 else t
        return k * a, k * sgn
    if p == "pseudo_huber":
        d = spec.get("delta", 1.0)
        root = math.sqrt(1 + (r / d) ** 2)
        return d * d * (root - 1), r / root
    if p == "barron":  # Barron (CVPR 2019), straight from the paper's definition and its limits
        alpha, c = spec.get("alpha", 1.0), spec.get("scale", 1.0)
        x2 = (r / c) ** 2
        if alpha == 2:
            return 0.5 * r * r, r
        if alpha == 0:
            return c * c * math.log(0.5 * x2 + 1), r / (0.5 * x2 + 1)
        if alpha == -math.inf:
            return c * c * (1 - math.exp(-0.5 * x2)), r * math.exp(-0.5 * x2)
        b = abs(alpha - 2)
        return c * c * b / alpha * ((x2 / b + 1) ** (alpha / 2) - 1), r * (x2 / b + 1) ** (alpha / 2 - 1)
    raise ValueError(p)


def _div(a: float, b: float) -> float:
    return a / b if b != 0 else 0.0


def naive(case: dict[str, Any]) -> dict[str, Any]:
    """Value and gradients (w.r.t. pred and target) of one (B, d) case, by hand."""
    spec = case["spec"]
    P, T = case["pred"], case["target"]
    B = len(P)
    if B == 0:  # an empty batch: 0, with an empty gradient (docs/design.md, "Semantics", a zero normalizer)
        return {"value": 0.0, "grad_pred": [], "grad_target": []}
    D = len(P[0])
    W = case.get("weight")  # (B, d) or None
    S = case.get("sample_weight")  # (B,) or None
    M = case.get("mask")  # (B, d) of 0/1 or None
    red = spec.get("reduction", "mean")
    fin = spec.get("finalize", "identity")
    per_sample = spec.get("per_sample", False)

    def valid(i: int, j: int) -> bool:
        ok = M is None or bool(M[i][j])
        if spec.get("missing") == "nan" and math.isnan(T[i][j]):
            ok = False
        return ok

    v = [[valid(i, j) for j in range(D)] for i in range(B)]
    r = [[(P[i][j] - T[i][j]) if v[i][j] else 0.0 for j in range(D)] for i in range(B)]
    lv = [[rho(spec, r[i][j])[0] for j in range(D)] for i in range(B)]
    dl = [[rho(spec, r[i][j])[1] for j in range(D)] for i in range(B)]
    ew = [[(W[i][j] if W else 1.0) for j in range(D)] for i in range(B)]
    sw = [(S[i] if S else 1.0) for i in range(B)]
    gp = [[0.0] * D for _ in range(B)]

    if fin in ("nmse", "r2"):
        return _naive_r2(case, v, r, ew, sw)

    if per_sample:
        # units are samples: l_i = sum_j(w v l) / sum_j(v); unit weight s_i
        n = [sum(v[i]) for i in range(B)]
        unit = [_div(sum(ew[i][j] * lv[i][j] for j in range(D) if v[i][j]), n[i]) for i in range(B)]
        uvalid = [n[i] > 0 for i in range(B)]
        # d unit_i / d p_ij
        dunit = [[(ew[i][j] * dl[i][j] / n[i]) if v[i][j] else 0.0 for j in range(D)] for i in range(B)]
        num = sum(sw[i] * unit[i] for i in range(B) if uvalid[i])
        if red == "sum":
            den = 1.0
        elif red == "mean":
            den = sum(sw[i] for i in range(B) if uvalid[i])
        elif red == "sum_over_batch_size":
            den = float(sum(uvalid))
        else:
            raise ValueError(red)
        value = _div(num, den)
        for i in range(B):
            for j in range(D):
                if uvalid[i] and den:
                    gp[i][j] = sw[i] * dunit[i][j] / den
    else:
        c = [[ew[i][j] * sw[i] * v[i][j] for j in range(D)] for i in range(B)]
        if red == "per_output":
            value = [_div(sum(c[i][j] * lv[i][j] for i in range(B)), sum(c[i][j] for i in range(B)))
                     for j in range(D)]
            ct = case.get("cotangent") or [1.0] * D
            for i in range(B):
                for j in range(D):
                    gp[i][j] = ct[j] * _div(c[i][j] * dl[i][j], sum(c[k][j] for k in range(B)))
            if fin == "sqrt":
                for j in range(D):
                    s = math.sqrt(value[j])
                    for i in range(B):
                        gp[i][j] = _div(gp[i][j], 2 * s)
                    value[j] = s
            return {"value": value, "grad_pred": gp, "grad_target": _neg(gp, v)}
        if red == "per_sample":
            value = [_div(sum(c[i][j] * lv[i][j] for j in range(D)), sum(c[i])) for i in range(B)]
            ct = case.get("cotangent") or [1.0] * B
            for i in range(B):
                for j in range(D):
                    gp[i][j] = ct[i] * _div(c[i][j] * dl[i][j], sum(c[i]))
            return {"value": value, "grad_pred": gp, "grad_target": _neg(gp, v)}
        num = sum(c[i][j] * lv[i][j] for i in range(B) for j in range(D))
        if red == "sum":
            den = 1.0
        elif red == "mean":
            den = sum(map(sum, c))
        elif red == "sum_over_batch_size":
            den = float(sum(map(sum, v)))
        else:
            raise ValueError(red)
        value = _div(num, den)
        for i in range(B):
            for j in range(D):
                gp[i][j] = _div(c[i][j] * dl[i][j], den)
    if fin == "sqrt":
        s = math.sqrt(value)
        gp = [[_div(g, 2 * s) for g in row] for row in gp]
        value = s
    return {"value": value, "grad_pred": gp, "grad_target": _neg(gp, v)}


def _neg(g: list[list[float]], v: list[list[bool]]) -> list[list[float]]:
    return [[(-x if ok else 0.0) for x, ok in zip(row, vrow)] for row, vrow in zip(g, v)]


def _naive_r2(case: dict[str, Any], v: Any, r: Any, ew: Any, sw: Any) -> dict[str, Any]:
    """NMSE_j = SSE_j / SST_j with the weighted, centred variance; R^2 = 1 - NMSE."""
    spec = case["spec"]
    T = case["target"]
    B, D = len(r), len(r[0])
    c = [[ew[i][j] * sw[i] * v[i][j] for j in range(D)] for i in range(B)]
    per, sst, gp, gt = [], [], [[0.0] * D for _ in range(B)], [[0.0] * D for _ in range(B)]
    for j in range(D):
        cw = sum(c[i][j] for i in range(B))
        ybar = _div(sum(c[i][j] * T[i][j] for i in range(B) if v[i][j]), cw)
        dev = [(T[i][j] - ybar) if v[i][j] else 0.0 for i in range(B)]
        sse = sum(c[i][j] * r[i][j] ** 2 for i in range(B))
        st = sum(c[i][j] * dev[i] ** 2 for i in range(B))
        sst.append(st)
        if st == 0:
            per.append(0.0 if sse == 0 else 1.0)
            continue
        per.append(sse / st)
        for i in range(B):
            gp[i][j] = 2 * c[i][j] * r[i][j] / st
            gt[i][j] = -2 * c[i][j] * r[i][j] / st - sse * 2 * c[i][j] * dev[i] / st**2
    mo = spec.get("multioutput", "uniform_average")
    sign = -1.0 if spec.get("finalize") == "r2" else 1.0
    if mo == "variance_weighted":
        # sum_j SST_j * NMSE_j / sum_j SST_j = sum_j SSE_j / sum_j SST_j (all SST_j > 0 here)
        tot = sum(sst)
        assert all(x > 0 for x in sst)
        sse = [per[j] * sst[j] for j in range(D)]
        agg = sum(sse) / tot
        dev = _devs(T, v, c)
        gp = [[2 * c[i][j] * r[i][j] / tot for j in range(D)] for i in range(B)]
        gt = [[-2 * c[i][j] * r[i][j] / tot - agg * 2 * c[i][j] * dev[i][j] / tot for j in range(D)]
              for i in range(B)]
        return {"value": 1 - agg if sign < 0 else agg,
                "grad_pred": [[sign * x for x in row] for row in gp],
                "grad_target": [[sign * x for x in row] for row in gt]}
    if mo == "raw_values":
        coef = None
    elif mo == "uniform_average":
        coef = [1.0 / D] * D
    else:
        coef = [m / sum(mo) for m in mo]
    if coef is None:
        value: Any = [(1 - x) if sign < 0 else x for x in per]
        ct = case.get("cotangent") or [1.0] * D
        coef = [sign * k for k in ct]
    else:
        agg = sum(k * x for k, x in zip(coef, per))
        value = 1 - agg if sign < 0 else agg
        coef = [sign * k for k in coef]
    gp = [[coef[j] * gp[i][j] for j in range(D)] for i in range(B)]
    gt = [[coef[j] * gt[i][j] for j in range(D)] for i in range(B)]
    return {"value": value, "grad_pred": gp, "grad_target": gt}


def _devs(T: Any, v: Any, c: Any) -> list[list[float]]:
    B, D = len(c), len(c[0])
    out = [[0.0] * D for _ in range(B)]
    for j in range(D):
        ybar = _div(sum(c[i][j] * T[i][j] for i in range(B) if v[i][j]), sum(c[i][j] for i in range(B)))
        for i in range(B):
            out[i][j] = (T[i][j] - ybar) if v[i][j] else 0.0
    return out


# -- the named cases -------------------------------------------------------------------------
P0 = [[2.5, 0.0, 1.0], [2.0, 8.0, -1.5], [0.5, -2.0, 3.0], [1.0, 1.0, 1.0]]
T0 = [[3.0, -0.5, 1.0], [2.0, 7.0, 0.5], [0.0, 1.0, 2.5], [4.0, -1.0, 1.0]]
T_NAN = [[3.0, NAN, 1.0], [2.0, 7.0, NAN], [0.0, 1.0, 2.5], [NAN, NAN, NAN]]
W0 = [[1.0, 2.0, 0.5], [0.0, 1.0, 3.0], [2.0, 2.0, 1.0], [1.0, 0.5, 1.5]]
S0 = [1.0, 3.0, 0.5, 2.0]
M0 = [[1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 1, 1]]
#: T0 with NaN and inf exactly where M0 masks: they must not reach the value or the gradient.
T_BAD_MASKED = [[3.0, -0.5, NAN], [2.0, float("inf"), 0.5], [0.0, 1.0, 2.5], [NAN, -1.0, 1.0]]


def cases() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(name: str, spec: dict[str, Any], target: Any = T0, pred: Any = P0, **kw: Any) -> None:
        out.append({"name": name, "spec": spec, "pred": pred, "target": target, **kw})

    penalties = [
        {"penalty": "square"}, {"penalty": "abs"}, {"penalty": "huber", "delta": 1.0},
        {"penalty": "huber", "delta": 0.5}, {"penalty": "smooth_l1", "beta": 0.5},
        {"penalty": "smooth_l1", "beta": 0.0}, {"penalty": "log_cosh"},
        {"penalty": "expectile", "tau": 0.8}, {"penalty": "quantile", "tau": 0.3},
        {"penalty": "pseudo_huber", "delta": 0.6}, {"penalty": "barron", "alpha": 0.5, "scale": 0.7},
        {"penalty": "barron", "alpha": 0.0, "scale": 1.0}, {"penalty": "barron", "alpha": -2.0, "scale": 0.8},
        {"penalty": "barron", "alpha": -math.inf, "scale": 1.2}, {"penalty": "barron", "alpha": 3.0, "scale": 1.0},
    ]
    for pen in penalties:
        tag = "-".join(str(x) for x in pen.values())
        for red in ("sum", "mean", "sum_over_batch_size"):
            add(f"{tag}-{red}", {**pen, "reduction": red})
        add(f"{tag}-mean-weighted-masked", {**pen, "reduction": "mean"}, weight=W0, sample_weight=S0, mask=M0)
        add(f"{tag}-sobs-masked", {**pen, "reduction": "sum_over_batch_size"}, weight=W0, mask=M0)
        add(f"{tag}-mean-missing", {**pen, "reduction": "mean", "missing": "nan"}, target=T_NAN)
        add(f"{tag}-keras-sobs", {**pen, "reduction": "sum_over_batch_size", "per_sample": True,
                                  "missing": "nan"},
            sample_weight=S0, mask=M0, target=T_NAN)
    add("mse-per_sample-weighted", {"reduction": "per_sample"}, weight=W0, mask=M0,
        cotangent=[1.0, 2.0, 0.5, 1.5])
    add("mse-per_output-weighted", {"reduction": "per_output"}, weight=W0, sample_weight=S0,
        cotangent=[1.0, 2.0, 0.5])
    add("mse-keras-mean-with-sample-weight", {"reduction": "mean", "per_sample": True},
        weight=W0, sample_weight=S0)
    add("mse-keras-sum", {"reduction": "sum", "per_sample": True}, sample_weight=S0)
    add("rmse-pooled", {"finalize": "sqrt"}, weight=W0)
    add("rmse-raw", {"finalize": "sqrt", "reduction": "per_output"}, sample_weight=S0, cotangent=[1.0, 2.0, 0.5])
    add("all-weights-zero", {"reduction": "mean"}, weight=[[0.0] * 3] * 4)
    add("all-masked", {"reduction": "mean", "finalize": "sqrt"}, mask=[[0] * 3] * 4)
    # the edge cases that break naive code (issue 2)
    for pen in ({"penalty": "square"}, {"penalty": "abs"}, {"penalty": "huber", "delta": 1.0}):
        add(f"{pen['penalty']}-nan-and-inf-under-the-mask", {**pen, "reduction": "mean"}, target=T_BAD_MASKED,
            weight=W0, mask=M0)
    add("rmse-perfect-fit", {"finalize": "sqrt"}, target=P0)  # d sqrt(m)/dm at 0 is taken as 0
    add("rmse-raw-perfect-fit", {"finalize": "sqrt", "reduction": "per_output"}, target=P0,
        cotangent=[1.0, 2.0, 0.5])
    for red in ("sum", "mean", "sum_over_batch_size"):
        add(f"mse-empty-batch-{red}", {"reduction": red}, target=[], pred=[])
    for fin in ("nmse", "r2"):
        for mo in ("uniform_average", "variance_weighted", [0.2, 0.3, 0.5]):
            add(f"{fin}-{mo}", {"finalize": fin, "multioutput": mo}, sample_weight=S0)
        add(f"{fin}-raw-missing", {"finalize": fin, "multioutput": "raw_values", "missing": "nan"},
            target=T_NAN, cotangent=[1.0, 2.0, 0.5])
    for c in out:
        c.update(naive(c))
    return out


def _encode(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, list):
        return [_encode(y) for y in x]
    if isinstance(x, dict):
        return {k: _encode(v) for k, v in x.items()}
    return x


def decode(x: Any) -> Any:
    if isinstance(x, dict):  # a case: the spec is kept as written
        return {k: (v if k in ("spec", "name") else decode(v)) for k, v in x.items()}
    if x == "nan":
        return NAN
    if isinstance(x, list):
        return [decode(y) for y in x]
    return x


def render() -> str:
    return json.dumps([_encode(c) for c in cases()], indent=1) + "\n"


if __name__ == "__main__":
    PATH.write_text(render())
    print(f"wrote {len(cases())} vectors to {PATH}")
