"""Imitating an LQR controller with the control-cost matrix R as the loss's precision.

Two carts on a track, coupled by a spring, each pushed by its own motor. The motors share a
power supply, so their control costs are correlated: the LQR cost is

    J = sum_t x_t^T Q x_t + u_t^T R u_t,      R = 10 [[1, 0.9], [0.9, 1]].

The expert is the optimal (centralised) LQR policy u = -K x. The student is decentralised:
each motor's controller sees only its own cart (position and velocity), so it cannot copy
the expert exactly and must trade errors between the two motors. Plain MSE trades them in
the Euclidean metric; ``MSELoss(precision=R)`` (the quadratic form r^T R r) trades them in
the metric of the control cost. We fit both on the expert's demonstrations and compare the
TRUE closed-loop cost J of each student.

Why R: near the optimum, a policy whose action is off by delta costs, to second order,
delta^T (R + B^T P B) delta more than the expert (P: the Riccati solution). With expensive
actuators R dominates B^T P B, so the R-weighted loss is (nearly) the excess cost itself;
the exact local metric R + B^T P B is shown too. This is a local argument: a student far
from the expert changes the states it visits, and then no fixed weighting is guaranteed to
help (try rho = -0.9 below).

The figure shows the two carts' positions and the motors' commands from one held-out start
under the expert and the two students, and each student's excess cost.

Run: ``python examples/lqr_imitation.py`` (a few seconds on a CPU); the figure goes to
``$MSE_ADAPTERS_FIGURES`` (default: a directory in the system's temporary directory).
"""

from __future__ import annotations

import numpy as np
import torch
from _gallery import plt, save
from torch import nn

from mse_adapters.torch import MSELoss

DT, SPRING = 0.1, 1.0
A = np.eye(4) + DT * np.array([[0, 1, 0, 0], [-SPRING, 0, SPRING, 0], [0, 0, 0, 1], [SPRING, 0, -SPRING, 0]])
B = DT * np.array([[0, 0], [1, 0], [0, 0], [0, 1]])
Q = np.diag([3.0, 0.1, 1.0, 0.1])  # state x = (position 1, velocity 1, position 2, velocity 2)
RHO = 0.9
R = 10.0 * np.array([[1.0, RHO], [RHO, 1.0]])


def lqr(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gain K and Riccati solution P of the discrete-time infinite-horizon LQR."""
    p = q.copy()
    for _ in range(5000):
        k = np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)
        p_next = q + a.T @ p @ (a - b @ k)
        if np.max(np.abs(p_next - p)) < 1e-12 * np.max(np.abs(p)):
            break
        p = p_next
    return k, p


def true_cost(policy: np.ndarray, starts: np.ndarray, horizon: int = 400) -> float:
    """Mean closed-loop cost J from the given initial states (u = -policy @ x)."""
    closed = A - B @ policy
    if np.max(np.abs(np.linalg.eigvals(closed))) >= 1.0:
        return float("inf")
    total = 0.0
    x = starts.T.copy()
    for _ in range(horizon):
        u = -policy @ x
        total += float(np.sum(x * (Q @ x)) + np.sum(u * (R @ u)))
        x = closed @ x
    return total / len(starts)


class Decentralised(nn.Module):
    """Motor i sees only cart i: u_i = -k_i . (position_i, velocity_i)."""

    def __init__(self) -> None:
        super().__init__()
        self.motor1 = nn.Linear(2, 1, bias=False, dtype=torch.float64)
        self.motor2 = nn.Linear(2, 1, bias=False, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.motor1(x[:, :2]), self.motor2(x[:, 2:])], dim=1)

    def gain(self) -> np.ndarray:
        k = np.zeros((2, 4))
        k[0, :2] = -self.motor1.weight.detach().numpy()[0]
        k[1, 2:] = -self.motor2.weight.detach().numpy()[0]
        return k


def fit(loss_fn: nn.Module, states: torch.Tensor, actions: torch.Tensor) -> np.ndarray:
    torch.manual_seed(0)
    student = Decentralised()
    opt = torch.optim.LBFGS(student.parameters(), max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(student(states), actions)
        loss.backward()
        return loss

    opt.step(closure)
    return student.gain()


def main() -> None:
    k_expert, p = lqr(A, B, Q, R)
    rng = np.random.default_rng(0)
    # demonstrations: the expert's closed-loop trajectories from random starts
    demos = []
    for x0 in rng.normal(size=(40, 4)):
        x = x0
        for _ in range(60):
            demos.append(x)
            x = (A - B @ k_expert) @ x
    states = torch.tensor(np.array(demos))
    actions = -states @ torch.tensor(k_expert).T
    starts = rng.normal(size=(200, 4))  # held-out initial states for the evaluation

    j_expert = true_cost(k_expert, starts)
    losses = {
        "plain MSE": MSELoss(),
        "R-weighted (precision=R)": MSELoss(precision=torch.tensor(R)),
        "exact local metric R + B^T P B": MSELoss(precision=torch.tensor(R + B.T @ p @ B)),
    }
    print(f"expert (centralised LQR) cost J* = {j_expert:.2f}; decentralised students:")
    costs, gains = {}, {}
    for name, loss_fn in losses.items():
        gains[name] = fit(loss_fn, states, actions)
        costs[name] = true_cost(gains[name], starts)
        print(f"  {name:32s} J = {costs[name]:8.2f}   excess {100 * (costs[name] / j_expert - 1):5.1f}%")
    if not costs["R-weighted (precision=R)"] < costs["plain MSE"]:
        raise SystemExit("unexpected: the R-weighted student is not cheaper than the plain-MSE one")
    figure(k_expert, gains, costs, j_expert, starts[0])


def figure(k_expert: np.ndarray, gains: dict[str, np.ndarray], costs: dict[str, float], j_expert: float,
           x0: np.ndarray, steps: int = 80) -> None:
    fig, (ax, ux, bx) = plt.subplots(1, 3, figsize=(14, 4))
    t = DT * np.arange(steps)
    policies = {"expert (LQR)": k_expert, **{k: gains[k] for k in ("plain MSE", "R-weighted (precision=R)")}}
    for (name, k), style in zip(policies.items(), ("k-", "-", "--")):
        x, xs, us = x0.copy(), [], []
        for _ in range(steps):
            xs.append(x)
            us.append(-k @ x)
            x = (A - B @ k) @ x
        xs_, us_ = np.array(xs), np.array(us)
        ax.plot(t, xs_[:, 0], style, label=f"{name}: cart 1")
        ax.plot(t, xs_[:, 2], style, alpha=0.5, label=f"{name}: cart 2")
        ux.plot(t, us_[:, 0] + us_[:, 1], style, label=name)
    ax.set_xlabel("time")
    ax.set_ylabel("position")
    ax.set_title("one held-out start")
    ax.legend(fontsize=7)
    ux.set_xlabel("time")
    ux.set_ylabel("u_1 + u_2 (the shared supply's load)")
    ux.legend(fontsize=7)
    names = list(costs)
    bx.barh(range(len(names)), [100 * (costs[n] / j_expert - 1) for n in names], color="tab:blue")
    bx.set_yticks(range(len(names)), names, fontsize=8)
    bx.set_xlabel("excess closed-loop cost over the expert (%)")
    fig.tight_layout()
    save(fig, "lqr_imitation")


if __name__ == "__main__":
    main()
