import json
import os

import numpy as np
import pytest
import torch

from sobolev_warmstart.data import (SCHEMA_VERSION, ChunkSpec, Normaliser, TaskInfo, TrajectoryData,
                                    build_dataset, load_dataset, save_dataset)
from sobolev_warmstart.synthetic import lqr_double_integrator


def _closed_loop_actions(data: TrajectoryData, i: int, t0: int, x: np.ndarray, action_space: str):
    """Re-simulate instance ``i`` from state ``x`` at ``t0`` with its (exact) LQR gains; actions a_{t0..T-1}."""
    dt = data.task.dt
    A = np.array([[1.0, dt], [0.0, 1.0]])
    B = np.array([[dt * dt], [dt]])
    ref = np.array([data.params[i, 0], 0.0])
    out = []
    for t in range(t0, data.task.horizon):
        u = data.feedback_gains[i, t] @ (x - ref)
        x = A @ x + B @ u
        out.append(u if action_space == "torque" else np.array([np.cos(x[0]), np.sin(x[0])]))
    return np.array(out)


@pytest.mark.parametrize("action_space", ["torque", "state"])
def test_synthetic_action_jacobians_match_finite_differences(action_space):
    data = lqr_double_integrator(3, horizon=12, chunk_offsets=6, action_space=action_space)
    T, eps = data.task.horizon, 1e-6
    for i, t0 in [(0, 0), (1, 5), (2, 9)]:
        x = data.xs[i, t0]
        base = _closed_loop_actions(data, i, t0, x, action_space)
        np.testing.assert_allclose(base, data.actions[i, t0:], atol=1e-12)
        fd = np.zeros((6, data.task.na, 2))
        for d in range(2):
            e = np.zeros(2)
            e[d] = eps
            ap = _closed_loop_actions(data, i, t0, x + e, action_space)
            am = _closed_loop_actions(data, i, t0, x - e, action_space)
            diff = (ap - am) / (2 * eps)
            idx = np.minimum(np.arange(6), T - 1 - t0)  # past the end: the last action
            fd[:, :, d] = diff[idx]
        np.testing.assert_allclose(data.action_jacobians[i, t0], fd, atol=2e-6, rtol=1e-6)


def test_chunks_layout_and_padding():
    data = lqr_double_integrator(2, horizon=10, chunk_offsets=8)
    spec = ChunkSpec(horizon=8, history=2, action_steps=4)
    ds = build_dataset(data, spec)
    T = 10
    assert len(ds) == 2 * T
    nrm = ds.normalisers
    a = lambda i, t: nrm.action.normalise(data.actions[i, t])  # noqa: E731
    # t0 = 0: history = two initial actions (zeros), then a_0..a_5
    c = ds.chunks[0].double().numpy()
    np.testing.assert_allclose(c[0], nrm.action.normalise(np.zeros(1)), atol=1e-6)
    np.testing.assert_allclose(c[1], nrm.action.normalise(np.zeros(1)), atol=1e-6)
    np.testing.assert_allclose(c[2], a(0, 0), atol=1e-6)
    # t0 = 7 of instance 1: a_5, a_6 | a_7, a_8, a_9, a_9, a_9, a_9
    m = 1 * T + 7
    c = ds.chunks[m].double().numpy()
    expect = [a(1, t) for t in [5, 6, 7, 8, 9, 9, 9, 9]]
    np.testing.assert_allclose(c, np.array(expect), atol=1e-6)
    # observation history edge-padded: t0 = 0 -> (o_0, o_0); t0 = 7 -> (o_6, o_7)
    o = ds.obs.double().numpy()
    np.testing.assert_allclose(o[0], nrm.observation.normalise(data.observations[0, [0, 0]]), atol=1e-6)
    np.testing.assert_allclose(o[m], nrm.observation.normalise(data.observations[1, [6, 7]]), atol=1e-6)
    # history rows carry no derivative
    assert torch.all(ds.chunk_jac[:, :2] == 0)
    assert ds.history_mask().tolist() == [True, True] + [False] * 6


@pytest.mark.parametrize("observation", ["identity", "angle"])
def test_normalised_derivatives_follow_chain_rule(observation):
    """chunk_jac = ∂ã/∂x̃ and obs_jac = ∂õ/∂x̃ checked by finite differences through the normalisers."""
    data = lqr_double_integrator(2, horizon=12, chunk_offsets=8, action_space="state", observation=observation)
    spec = ChunkSpec(horizon=8, history=1, action_steps=4)
    ds = build_dataset(data, spec, mode="standard")
    nrm = ds.normalisers
    i, t0, eps = 1, 3, 1e-6
    m = i * 12 + t0
    xs_n = nrm.state.normalise(data.xs[i, t0])
    fd_a = np.zeros((spec.horizon - 1, 2, 2))
    fd_o = np.zeros((data.task.no, 2))
    for d in range(2):
        e = np.zeros(2)
        e[d] = eps
        acts = [nrm.action.normalise(_closed_loop_actions(data, i, t0, nrm.state.unnormalise(xs_n + s * e),
                                                          "state")) for s in (1, -1)]
        idx = np.minimum(np.arange(spec.horizon - 1), 12 - 1 - t0)
        fd_a[:, :, d] = (acts[0][idx] - acts[1][idx]) / (2 * eps)
        obs = []
        for s in (1, -1):
            q, v = nrm.state.unnormalise(xs_n + s * e)
            o = np.array([q, v]) if observation == "identity" else np.array([np.cos(q), np.sin(q), v])
            obs.append(nrm.observation.normalise(o))
        fd_o[:, d] = (obs[0] - obs[1]) / (2 * eps)
    np.testing.assert_allclose(ds.chunk_jac[m, 1:].double().numpy(), fd_a, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(ds.obs_jac[m].double().numpy(), fd_o, atol=1e-5, rtol=1e-4)


def test_normaliser_fit_and_roundtrip():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3)) * [1.0, 5.0, 0.0] + [0.0, 2.0, 7.0]
    n = Normaliser.fit(x, "minmax")
    y = n.normalise(x)
    np.testing.assert_allclose(y[:, :2].min(0), -1.0)
    np.testing.assert_allclose(y[:, :2].max(0), 1.0)
    assert n.scale[2] == 1.0  # constant column
    np.testing.assert_allclose(n.unnormalise(y), x)
    s = Normaliser.fit(x, "standard")
    np.testing.assert_allclose(s.normalise(x)[:, :2].std(0), 1.0)
    with pytest.raises(ValueError, match="mode"):
        Normaliser.fit(x, "bogus")


def test_save_load_roundtrip_and_version_checks(tmp_path):
    data = lqr_double_integrator(3, horizon=10, chunk_offsets=8)
    ds = build_dataset(data, ChunkSpec(8, 1, 4))
    p = tmp_path / "sub" / "ds.npz"
    save_dataset(ds, p)
    assert [f for f in os.listdir(p.parent)] == ["ds.npz"]  # no temporary left behind
    back = load_dataset(p, task=data.task.name)
    assert back.task == ds.task and back.spec == ds.spec
    for k in ("obs", "params", "chunks", "chunk_jac", "obs_jac"):
        assert torch.equal(getattr(back, k), getattr(ds, k)), k
    np.testing.assert_array_equal(back.normalisers.action.scale, ds.normalisers.action.scale)
    with pytest.raises(ValueError, match="expected a dataset of task 'ur5'"):
        load_dataset(p, task="ur5")
    # another schema version
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["__header__"].tobytes())
    header["schema_version"] = SCHEMA_VERSION + 1
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    q = tmp_path / "v2.npz"
    np.savez(q, **arrays)
    with pytest.raises(ValueError, match="schema version"):
        load_dataset(q)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a sobolev_warmstart dataset"):
        load_dataset(tmp_path / "other.npz")


def test_atomic_save_keeps_old_file_on_failure(tmp_path, monkeypatch):
    data = lqr_double_integrator(2, horizon=10, chunk_offsets=8)
    ds = build_dataset(data, ChunkSpec(8, 1, 4))
    p = tmp_path / "ds.npz"
    save_dataset(ds, p)
    before = p.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_dataset(ds, p)
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["ds.npz"]


def test_bad_inputs_name_the_argument():
    good = lqr_double_integrator(2, horizon=10, chunk_offsets=8)
    kw = good.arrays()
    with pytest.raises(ValueError, match=r"us: expected shape \(2, 10, 1\), got \(2, 9, 1\)"):
        TrajectoryData(task=good.task, **{**kw, "us": kw["us"][:, :9]})
    bad = kw["xs"].copy()
    bad[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="xs: expected finite values"):
        TrajectoryData(task=good.task, **{**kw, "xs": bad})
    with pytest.raises(ValueError, match="params: expected shape"):
        TrajectoryData(task=good.task, **{**kw, "params": None})
    with pytest.raises(ValueError, match="action_space"):
        TaskInfo("p", 2, 2, 1, 1, 2, 0, 0.1, 10, action_space="velocity")
    with pytest.raises(ValueError, match="action_steps: expected history \\+ action_steps <= horizon"):
        ChunkSpec(horizon=8, history=2, action_steps=7)
    with pytest.raises(ValueError, match="horizon: expected a positive integer"):
        ChunkSpec(horizon=0)
    with pytest.raises(ValueError, match="action_jacobians: expected at least horizon - history = 15"):
        build_dataset(good, ChunkSpec(16, 1, 8))
    with pytest.raises(TypeError, match="data: expected a TrajectoryData"):
        build_dataset(kw)


def test_only_converged_instances_are_kept():
    data = lqr_double_integrator(4, horizon=10, chunk_offsets=8)
    data.converged = np.array([True, False, True, False])
    ds = build_dataset(data, ChunkSpec(8, 1, 4))
    assert ds.data.num_instances == 2
    np.testing.assert_array_equal(ds.data.xs, data.xs[[0, 2]])


def test_task_without_parameters():
    """nz = 0 (the pendulum): empty parameter arrays all the way through."""
    data = lqr_double_integrator(2, horizon=10, chunk_offsets=8)
    kw = data.arrays()
    kw["params"] = np.zeros((2, 0))
    import dataclasses
    d0 = TrajectoryData(task=dataclasses.replace(data.task, nz=0), **kw)
    ds = build_dataset(d0, ChunkSpec(8, 1, 4))
    assert ds.params.shape == (20, 0) and ds.normalisers.params.dim == 0


def test_relative_chunks_on_a_torque_task_keep_their_derivatives():
    """Relative to the last known torque (a past control, not a function of the current state): the chunk moves
    by that torque, its derivative targets do not; the action normaliser is fitted on the relative chunks."""
    data = lqr_double_integrator(3, horizon=10, chunk_offsets=8)
    absolute = build_dataset(data, ChunkSpec(horizon=8, history=2, action_steps=4))
    relative = build_dataset(data, ChunkSpec(horizon=8, history=2, action_steps=4, relative_actions=True))
    a_abs = absolute.normalisers.action.unnormalise(absolute.chunks.double().numpy())
    a_rel = relative.normalisers.action.unnormalise(relative.chunks.double().numpy())
    np.testing.assert_allclose(a_rel, a_abs - a_abs[:, 1:2], atol=1e-5)
    np.testing.assert_allclose(a_rel[:, 1], 0.0, atol=1e-5)  # the known action relative to itself
    lo, hi = a_rel.min((0, 1)), a_rel.max((0, 1))
    np.testing.assert_allclose(relative.normalisers.action.offset, 0.5 * (lo + hi), atol=1e-5)
    scale_ratio = absolute.normalisers.action.scale / relative.normalisers.action.scale
    torch.testing.assert_close(relative.chunk_jac, absolute.chunk_jac * torch.tensor(scale_ratio, dtype=torch.float32)[:, None])
    with pytest.raises(ValueError, match="relative_actions: expected a bool, got 1"):
        ChunkSpec(relative_actions=1)


def test_a_standard_action_normaliser_leaves_the_other_normalisers_and_scales_the_derivative_targets():
    """``action_mode="standard"``: the actions' mean and standard deviation (the relative chunks' with
    ``relative_actions``), the observation, parameter and state normalisers still min-max; the derivative targets
    follow the action scale; a bad mode names the argument."""
    data = lqr_double_integrator(3, horizon=10, chunk_offsets=8)
    for spec in (ChunkSpec(8, 2, 4), ChunkSpec(8, 2, 4, relative_actions=True)):
        minmax = build_dataset(data, spec)
        std = build_dataset(data, spec, action_mode="standard")
        physical = minmax.normalisers.action.unnormalise(minmax.chunks.double().numpy())
        fitted_on = physical if spec.relative_actions else np.concatenate([data.actions.reshape(-1, 1),
                                                                         data.initial_actions])
        if spec.relative_actions:  # every (instance, t0) chunk, as the normaliser sees them
            np.testing.assert_allclose(std.normalisers.action.offset, fitted_on.reshape(-1, 1).mean(0), rtol=1e-5)
            np.testing.assert_allclose(std.normalisers.action.scale, fitted_on.reshape(-1, 1).std(0), rtol=1e-5)
        else:
            np.testing.assert_allclose(std.normalisers.action.offset, fitted_on.mean(0))
            np.testing.assert_allclose(std.normalisers.action.scale, fitted_on.std(0))
        for k in ("observation", "params", "state"):
            np.testing.assert_array_equal(getattr(std.normalisers, k).scale, getattr(minmax.normalisers, k).scale)
        ratio = minmax.normalisers.action.scale / std.normalisers.action.scale
        assert ratio[0] > 1.5  # a standard deviation is well inside the range here
        torch.testing.assert_close(std.chunk_jac, minmax.chunk_jac * torch.tensor(ratio, dtype=torch.float32)[:, None])
        np.testing.assert_allclose(std.normalisers.action.unnormalise(std.chunks.double().numpy()), physical,
                                   atol=1e-4)
    with pytest.raises(ValueError, match="action_mode: expected 'minmax', 'standard' or None, got 'robust'"):
        build_dataset(data, ChunkSpec(8, 2, 4), action_mode="robust")


def test_a_standard_observation_normaliser_scales_the_inputs_and_their_jacobians_not_the_targets():
    """``observation_mode="standard"``: the observations' mean and standard deviation; the action, parameter and
    state normalisers and the derivative targets ``∂ã/∂x̃`` stay those of min-max, the observation Jacobians
    ``∂õ/∂x̃`` follow the new scale; a bad mode names the argument."""
    data = lqr_double_integrator(3, horizon=10, chunk_offsets=8)
    spec = ChunkSpec(8, 2, 4)
    minmax = build_dataset(data, spec)
    std = build_dataset(data, spec, observation_mode="standard")
    flat = data.observations.reshape(-1, data.observations.shape[-1])
    np.testing.assert_allclose(std.normalisers.observation.offset, flat.mean(0))
    np.testing.assert_allclose(std.normalisers.observation.scale, flat.std(0))
    for k in ("action", "params", "state"):
        np.testing.assert_array_equal(getattr(std.normalisers, k).scale, getattr(minmax.normalisers, k).scale)
    torch.testing.assert_close(std.chunk_jac, minmax.chunk_jac)
    torch.testing.assert_close(std.chunks, minmax.chunks)
    ratio = minmax.normalisers.observation.scale / std.normalisers.observation.scale
    assert np.all(ratio > 1.2)  # a standard deviation is well inside the range here
    torch.testing.assert_close(std.obs_jac, minmax.obs_jac * torch.tensor(ratio, dtype=torch.float32)[:, None])
    np.testing.assert_allclose(std.normalisers.observation.unnormalise(std.obs.double().numpy()),
                               minmax.normalisers.observation.unnormalise(minmax.obs.double().numpy()), atol=1e-4)
    with pytest.raises(ValueError, match="observation_mode: expected 'minmax', 'standard' or None, got 'robust'"):
        build_dataset(data, spec, observation_mode="robust")


@pytest.mark.parametrize("name,variant", [("ur5", "random_start_random_target"), ("quadrotor", "columns_3")])
def test_relative_chunks_on_state_tasks_subtract_the_current_state_and_its_jacobian(solved, name, variant):
    """On a state-action task the last known action is the features of the current state, a_{t0-1} = g(x_{t0});
    a relative chunk is the absolute one minus it, and its derivative target minus d g / d x_{t0}."""
    task, x0s, params, r = solved(name, variant)
    import sobolev_warmstart as sw
    data = sw.TrajectoryData.from_solve(task, r, sw.chained_derivatives(task, r, 8)).select(r.converged)
    spec = ChunkSpec(horizon=8, history=1, action_steps=2)
    absolute = build_dataset(data, spec)
    relative = build_dataset(data, ChunkSpec(horizon=8, history=1, action_steps=2, relative_actions=True))
    T = task.horizon
    for m in (0, 7, T + 23, len(relative) - 1):
        i, t0 = int(relative.instance[m]), int(relative.start[m])
        base = task.action(np.zeros(task.nu), data.xs[i, t0])  # g(x_{t0})
        a_abs = absolute.normalisers.action.unnormalise(absolute.chunks[m].double().numpy())
        a_rel = relative.normalisers.action.unnormalise(relative.chunks[m].double().numpy())
        np.testing.assert_allclose(a_abs[0], base, atol=1e-5)
        np.testing.assert_allclose(a_rel, a_abs - base, atol=1e-5)
        sx = relative.normalisers.state.scale
        j_abs = absolute.chunk_jac[m, 1:].double().numpy() * absolute.normalisers.action.scale[:, None] / sx
        j_rel = relative.chunk_jac[m, 1:].double().numpy() * relative.normalisers.action.scale[:, None] / sx
        D = task.action_state_jacobians(data.xs[i, t0][None])[0]
        np.testing.assert_allclose(j_rel, j_abs - D, atol=1e-5 * max(1.0, np.abs(j_abs).max()))
