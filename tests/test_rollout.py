"""The C++ warm-start path: policy runner, rollouts, noise, against the eager Python reference."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

import sobolev_warmstart as sw
from sobolev_warmstart import _core
from sobolev_warmstart.data import ChunkSpec, build_dataset
from sobolev_warmstart.models import UNetConfig
from sobolev_warmstart.warmstart import default_guesses

needs_compiler = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                    reason="AOTInductor needs a C++ compiler")

SPEC = ChunkSpec(horizon=16, history=2, action_steps=8)


def _trained(task, kind: str, n: int = 8, epochs: int = 3, unet: UNetConfig | None = None):
    """A briefly trained policy: sensible outputs, so rollouts stay well-conditioned."""
    x0s, params = task.sample_instances(n, seed=0)
    res = sw.solve(task, x0s, params)
    data = sw.TrajectoryData.from_solve(task, res, sw.chained_derivatives(task, res, SPEC.horizon))
    ds = build_dataset(data.select(res.converged), SPEC)
    cfg = sw.TrainConfig(policy=kind, epochs=epochs, batch_size=64, lr=3e-3, progress=False, num_threads=1,
                         sobolev_weight=0.01 if kind.startswith("sob") else 0.0, unet=unet or UNetConfig())
    return sw.train(ds, cfg).eval()


@pytest.fixture(scope="module")
def policies(tmp_path_factory):
    """Trained, exported policies: {(task name, kind): (task, policy, path)} (TorchScript; the native export of the
    same policy beside it, ``path.with_suffix(".safetensors")``)."""
    root = tmp_path_factory.mktemp("policies")
    out = {}
    for name, variant, kind in [("pendulum", "", "sob_diff"), ("ur5", "fixed_start_random_target", "diff"),
                                ("pendulum", "", "mlp"), ("quadrotor", "columns_3", "sob_diff")]:
        task = sw.make_task(name, variant)
        policy = _trained(task, kind)
        path = sw.export_torchscript(policy, root / f"{name}_{kind}.pt")
        sw.export_native(policy, path.with_suffix(".safetensors"))
        out[(name, kind)] = (task, policy, path)
    return out


def test_noise_is_counter_based_and_standard_normal():
    a = sw.rollout_noise(7, 4, 3, 5, 16, 2)
    assert a.shape == (4, 3, 5, 16, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, sw.rollout_noise(7, 4, 3, 5, 16, 2))
    np.testing.assert_array_equal(a[2:3], sw.rollout_noise(7, 1, 3, 5, 16, 2, instances=[2]))
    assert not np.array_equal(a, sw.rollout_noise(8, 4, 3, 5, 16, 2))
    big = sw.rollout_noise(0, 50, 20, 5, 16, 2).ravel()
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1.0) < 0.01
    assert abs(np.mean(big ** 4) - 3.0) < 0.05  # kurtosis of a normal


@pytest.mark.parametrize("backend", ["torchscript", "native"])
@pytest.mark.parametrize("key", [("pendulum", "sob_diff"), ("ur5", "diff"), ("pendulum", "mlp"), ("quadrotor", "sob_diff")],
                         ids=["torque-diffusion", "state-diffusion", "torque-mlp", "free-flyer-diffusion"])
def test_cpp_rollout_equals_python_eager_rollout(policies, key, backend):
    task, policy, path = policies[key]
    if backend == "native":
        path = path.with_suffix(".safetensors")
    x0s, params = task.sample_instances(6, seed=11)
    cpp = sw.rollout(task, x0s, params, path, seed=3)
    py = sw.rollout(task, x0s, params, policy, seed=3)
    assert cpp.backend == f"cpp/{backend}" and py.backend == "python/eager"
    assert cpp.num_replans == py.num_replans == (task.horizon if key[1] == "mlp" else -(-task.horizon // 8))
    # TorchScript runs eager's kernels; the native forward rounds float32 in another order (~1e-6 relative per
    # network output), which the closed loop amplifies: largest difference over five instance/rollout seeds
    # 1.9e-4 on the UR5 (inverse dynamics), 6.8e-5 on the pendulum, 4.1e-4 on the quadrotor (five instance seeds x two
    # rollout seeds; TorchScript 0 there)
    tol = 1e-4 if backend == "torchscript" else 1e-3
    np.testing.assert_allclose(cpp.xs, py.xs, atol=tol)
    np.testing.assert_allclose(cpp.us, py.us, atol=tol)
    np.testing.assert_allclose(cpp.actions, py.actions, atol=tol)
    assert all(e == "" for e in cpp.errors)
    # the states obey the dynamics with the returned controls
    for i in range(2):
        np.testing.assert_allclose(task.step(cpp.xs[i, :-1], cpp.us[i]), cpp.xs[i, 1:], atol=1e-12)
    np.testing.assert_array_equal(cpp.xs[:, 0], x0s)


def test_ddim_sampled_rollout_equals_eager_and_ignores_the_later_draws(policies, tmp_path):
    """The same trained policy sampled with DDIM on steps 4, 0: the C++ (native) rollout equals the eager one, and
    only each replan's first draw moves it."""
    import copy
    task, policy, _ = policies[("quadrotor", "sob_diff")]
    ddim = copy.deepcopy(policy).set_sampling_steps((4, 0))
    path = sw.export_native(ddim, tmp_path / "ddim.safetensors")
    x0s, params = task.sample_instances(4, seed=12)
    cpp = sw.rollout(task, x0s, params, path, seed=3)
    # the native tolerance above; measured: at most 1.6e-4 over six instance seeds x two rollout seeds
    np.testing.assert_allclose(cpp.xs, sw.rollout(task, x0s, params, ddim, seed=3).xs, atol=1e-3)
    noise = sw.rollout_noise(3, 4, cpp.num_replans, 5, policy.horizon, task.na)
    noise[:, :, 1:] = sw.rollout_noise(4, 4, cpp.num_replans, 4, policy.horizon, task.na)
    np.testing.assert_array_equal(sw.rollout(task, x0s, params, path, noise=noise).xs, cpp.xs)
    assert np.abs(sw.rollout(task, x0s, params, policies[("quadrotor", "sob_diff")][2].with_suffix(".safetensors"),
                             seed=3).xs - cpp.xs).max() > 1e-6  # the DDPM sampler's rollout differs


def test_explicit_noise_equals_seeded_noise_and_changes_the_rollout(policies):
    task, policy, path = policies[("pendulum", "sob_diff")]
    x0s, params = task.sample_instances(3, seed=1)
    seeded = sw.rollout(task, x0s, params, path, seed=5)
    noise = sw.rollout_noise(5, 3, seeded.num_replans, policy.num_steps, policy.horizon, task.na)
    explicit = sw.rollout(task, x0s, params, path, noise=noise)
    np.testing.assert_array_equal(seeded.xs, explicit.xs)
    other = sw.rollout(task, x0s, params, path, seed=6)
    assert np.abs(other.us - seeded.us).max() > 1e-3


def test_lockstep_sequential_and_threads_agree(policies):
    # (batched network calls round differently in float32: compare on the stable torque task)
    task, _, path = policies[("pendulum", "sob_diff")]
    x0s, params = task.sample_instances(7, seed=2)
    runs = [sw.rollout(task, x0s, params, path, seed=1, batch_size=b, num_threads=t)
            for b, t in [(1, 1), (7, 1), (3, 2), (0, 2)]]
    for r in runs[1:]:
        np.testing.assert_allclose(r.xs, runs[0].xs, atol=1e-4)
    assert runs[1].policy_calls == runs[1].num_replans and runs[0].policy_calls == 7 * runs[0].num_replans
    assert runs[2].policy_calls == 3 * runs[2].num_replans  # groups of 3, 3 and 1
    # an instance gets the same noise whatever else is in the batch: its rollout alone is the same
    alone = sw.rollout(task, x0s[3:4], params[3:4], path, seed=1)
    assert np.abs(alone.xs[0] - runs[0].xs[3]).max() > 1e-3  # alone it is instance 0: another noise stream
    ids = sw.rollout_noise(1, 7, runs[0].num_replans, 5, 16, 1)[3:4]
    np.testing.assert_allclose(sw.rollout(task, x0s[3:4], params[3:4], path, noise=ids).xs[0], runs[0].xs[3], atol=1e-4)


def test_runner_equals_eager_policy(policies):
    task, policy, path = policies[("pendulum", "sob_diff")]
    runner = sw.load_policy_runner(path)
    assert (runner.kind, runner.backend, runner.task_name) == ("diffusion", "torchscript", "pendulum")
    assert (runner.horizon, runner.history, runner.action_steps, runner.num_steps) == (16, 2, 8, policy.num_steps)
    assert json.loads(runner.metadata_json)["task"]["nx"] == task.nx
    g = torch.Generator().manual_seed(0)
    obs, z = torch.randn(4, 2, task.no, generator=g), torch.zeros(4, 0)
    hist, noise = 0.3 * torch.randn(4, 2, 1, generator=g), torch.randn(policy.num_steps, 4, 16, 1, generator=g)
    with torch.no_grad():
        ref = policy(obs, z, hist, noise).numpy()
    got = runner.sample_chunks(obs.numpy(), z.numpy(), hist.numpy(), noise.numpy())
    np.testing.assert_allclose(got, ref, atol=1e-5)
    with pytest.raises(ValueError, match=r"noise: expected shape \(5, 4, 16, 1\), got \(5, 4, 8, 1\)"):
        runner.sample_chunks(obs.numpy(), z.numpy(), hist.numpy(), noise.numpy()[:, :, :8])
    with pytest.raises(ValueError, match="use sample_chunks"):
        runner.act(obs.numpy()[:, 0], z.numpy())
    mlp_task, mlp_policy, mlp_path = policies[("pendulum", "mlp")]
    mlp = sw.load_policy_runner(mlp_path)
    o = np.random.default_rng(0).normal(size=(5, task.no)).astype(np.float32)
    with torch.no_grad():
        ref = mlp_policy(torch.as_tensor(o), torch.zeros(5, 0)).numpy()
    np.testing.assert_allclose(mlp.act(o, np.zeros((5, 0), np.float32)), ref, atol=1e-5)


@needs_compiler
def test_aoti_backend_loads_and_agrees_with_torchscript(tmp_path):
    task = sw.make_task("pendulum")
    policy = _trained(task, "diff", n=4, epochs=1, unet=UNetConfig(down_dims=(8, 16), n_groups=4, step_embed_dim=8))
    policy.set_sampling_steps((4, 0))  # the scorecard's sampler; two network calls compile in 2/5 of five's time
    ts = sw.export_torchscript(policy, tmp_path / "p.pt")
    aoti = sw.export_aoti(policy, tmp_path / "p.pt2", max_batch=64)
    r_ts, r_aoti = sw.load_policy_runner(ts), sw.load_policy_runner(aoti)
    assert r_aoti.backend == "aoti" and r_aoti.metadata_json == r_ts.metadata_json
    x0s, params = task.sample_instances(5, seed=4)
    a = sw.rollout(task, x0s, params, r_ts, seed=2)
    b = sw.rollout(task, x0s, params, r_aoti, seed=2, num_threads=2)
    assert b.backend == "cpp/aoti"
    np.testing.assert_allclose(a.xs, b.xs, atol=1e-4)


def test_bad_policy_files_give_clear_errors(tmp_path, policies):
    task = sw.make_task("pendulum")
    x0s, params = task.sample_instances(2, seed=0)
    with pytest.raises(ValueError, match="policy_path: file not found"):
        sw.load_policy_runner(tmp_path / "missing.pt")
    (tmp_path / "policy.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"expected a \.pt \(TorchScript\), \.pt2 \(AOTInductor\) or \.safetensors"):
        sw.load_policy_runner(tmp_path / "policy.onnx")
    for name in ("corrupt.pt", "corrupt.pt2"):
        (tmp_path / name).write_bytes(np.random.default_rng(0).bytes(4096))
        with pytest.raises(ValueError, match="not a loadable"):
            sw.load_policy_runner(tmp_path / name)
    plain = torch.jit.script(torch.nn.Linear(2, 1))
    plain.save(str(tmp_path / "plain.pt"))
    with pytest.raises(ValueError, match="without sobolev_warmstart metadata"):
        sw.load_policy_runner(tmp_path / "plain.pt")
    # a policy for another task, or with other sizes
    _, _, pend_path = policies[("pendulum", "sob_diff")]
    with pytest.raises(ValueError, match="exported for task = pendulum, task double_pendulum/default has double_pendulum"):
        sw.rollout(sw.make_task("double_pendulum"), *sw.make_task("double_pendulum").sample_instances(2, seed=0), pend_path)
    with pytest.raises(ValueError, match=r"action_steps: expected 1\.\.14"):
        sw.rollout(task, x0s, params, pend_path, action_steps=15)
    with pytest.raises(ValueError, match="action_steps: expected a positive integer"):
        sw.rollout(task, x0s, params, pend_path, action_steps=0)
    with pytest.raises(ValueError, match=r"noise: expected shape \(2, 13, 5, 16, 1\)"):
        sw.rollout(task, x0s, params, pend_path, noise=np.zeros((2, 12, 5, 16, 1), np.float32))
    with pytest.raises(ValueError, match=r"x0s: expected shape \(N, 2\)"):
        sw.rollout(task, x0s[:, :1], params, pend_path)
    with pytest.raises(TypeError, match="policy: expected a path"):
        sw.rollout(task, x0s, params, 42)


def test_execute_actions_clamps_torques_and_decodes_state_actions(solved):
    task = sw.make_task("pendulum")
    x = np.array([[np.pi, 0.0], [np.pi, 0.0]])
    u, x_next, a = _core.execute_actions(task, x, np.array([[5.0], [-0.1]]))
    np.testing.assert_allclose(u[:, 0], [task.u_upper[0], -0.1])
    np.testing.assert_allclose(a, u)
    np.testing.assert_allclose(x_next, task.step(x, u))
    # state actions: executing the solver's own actions g(q_{t+1}) reproduces its trajectory
    ur5, x0s, params, res = solved("ur5", "fixed_start_fixed_target")
    xs, us = res.xs[0], res.us[0]
    actions = np.stack([ur5.action(us[t], xs[t + 1]) for t in range(ur5.horizon)])
    u2, x2, a2 = _core.execute_actions(ur5, xs[:-1], actions)
    np.testing.assert_allclose(x2[:, :ur5.nq], xs[1:, :ur5.nq], atol=1e-8)
    np.testing.assert_allclose(u2, us, atol=1e-5 * np.abs(us).max())
    # executed through the velocity part: q' = q + dt v' whatever the (cos, sin) part says, across +-pi too
    x = xs[0].copy()
    x[: ur5.nq] = np.pi - 0.001
    v_next = np.full(ur5.nv, 0.1)
    q_far = x[: ur5.nq] + 1.0
    a = np.concatenate([np.cos(q_far), np.sin(q_far), v_next])[None]
    u, x_next, _ = _core.execute_actions(ur5, x[None], a)
    assert np.all((u > ur5.u_lower) & (u < ur5.u_upper))  # unclamped (|u| <= 36 N m): exactly the motion asked for
    np.testing.assert_allclose(x_next[0, ur5.nq:], v_next, atol=1e-8)
    np.testing.assert_allclose(x_next[0, : ur5.nq], x[: ur5.nq] + ur5.dt * v_next, atol=1e-10)


def test_trajectory_costs_equal_the_solver_cost_at_its_solution(solved):
    for name, variant in [("pendulum", "default"), ("quadrotor", "columns_3")]:
        task, x0s, params, res = solved(name, variant)
        costs = _core.trajectory_costs(task, x0s, params, res.xs, res.us)
        np.testing.assert_allclose(costs, res.cost, rtol=1e-9)


def _quadrotor_violations(task, xs, us, params):
    """The quadrotor's largest constraint violation computed without Aligator, from the bounds its description
    states: thrust box, height band and keep-out radius on every stage's (x_t, u_t), t < T (no terminal
    constraint); the columns' constraint in the task's units, keep-out^2 - (squared horizontal distance)."""
    text = task.describe()
    floor, ceiling = map(float, re.search(r"path constraints: ([\d.]+) <= z <= ([\d.]+) m", text).groups())
    keep_out = float(re.search(r"column centre >= ([\d.]+) m", text).group(1))
    T = task.horizon
    centres = params[:, 3:].reshape(len(params), -1, 2)
    nearest = ((xs[:, :T, None, :2] - centres[:, None]) ** 2).sum(-1).min(-1)
    height = np.maximum(floor - xs[:, :T, 2], xs[:, :T, 2] - ceiling)
    thrust = np.maximum(us - task.u_upper, task.u_lower - us).max(-1)
    return np.maximum.reduce([keep_out**2 - nearest, height, thrust, np.zeros_like(height)]).max(-1)


def test_constraint_violations_match_an_independent_computation_and_vanish_at_the_solutions(solved):
    task, x0s, params, res = solved("quadrotor", "columns_3")
    at_solution = _core.constraint_violations(task, x0s, params, res.xs, res.us)
    conv = res.converged
    assert conv.any() and np.all(at_solution[conv] <= res.primal_infeasibility[conv] * (1 + 1e-9) + 1e-12)
    # the default guess flies through the columns; the heights and thrusts perturbed out of their bands
    xs, us = default_guesses(task, x0s, params)
    rng = np.random.default_rng(0)
    for scale_z, scale_u in [(0.0, 0.0), (1.0, 0.0), (0.0, 3.0), (1.0, 3.0)]:
        xs_p, us_p = xs.copy(), us + rng.normal(0.0, scale_u, us.shape)
        xs_p[:, :, 2] += rng.normal(0.0, scale_z, xs.shape[:2])
        np.testing.assert_allclose(_core.constraint_violations(task, x0s, params, xs_p, us_p),
                                   _quadrotor_violations(task, xs_p, us_p, params), rtol=1e-12, atol=1e-12)
    assert np.sum(_quadrotor_violations(task, xs, us, params) > 0.01) >= 3  # straight lines enter columns
    # a torque box: the violation is how far the largest control leaves it
    task, x0s, params, res = solved("pendulum", "default")
    us = np.clip(res.us, task.u_lower, task.u_upper)
    us[:, 7] = task.u_upper + np.arange(len(us))[:, None] * 0.01
    np.testing.assert_allclose(_core.constraint_violations(task, x0s, params, res.xs, us),
                               np.arange(len(us)) * 0.01, atol=1e-12)
    with pytest.raises(ValueError, match="us: expected shape"):
        _core.constraint_violations(task, x0s, params, res.xs, us[:, :-1])


def test_a_policy_that_outputs_nan_is_held_the_same_way_in_cpp_and_python(policies, tmp_path):
    import copy

    task, policy, _ = policies[("pendulum", "mlp")]
    broken = copy.deepcopy(policy)
    with torch.no_grad():
        next(p for n, p in broken.named_parameters() if n.endswith("bias")).fill_(float("nan"))
    path = sw.export_torchscript(broken, tmp_path / "nan.pt")
    x0s, params = task.sample_instances(3, seed=0)
    cpp, py = sw.rollout(task, x0s, params, path), sw.rollout(task, x0s, params, broken)
    for r in (cpp, py):
        assert all("diverged" in e for e in r.errors)
        np.testing.assert_array_equal(r.xs, np.repeat(x0s[:, None], task.horizon + 1, axis=1))
    w = sw.warm_start(task, x0s, params, path, compare_default=True)  # solved from the default guess
    np.testing.assert_array_equal(w.warm.iterations, w.default.iterations)


@pytest.fixture(scope="module")
def time_policies(tmp_path_factory):
    """Policies conditioned on the time to go (``ChunkSpec.time_to_go``): {kind: (task, policy, TorchScript path)}."""
    root = tmp_path_factory.mktemp("time_policies")
    spec = ChunkSpec(horizon=16, history=2, action_steps=8, time_to_go=True)
    out = {}
    for name, variant, kind in [("ur5", "fixed_start_random_target", "sob_diff"), ("pendulum", "", "sob_mlp")]:
        task = sw.make_task(name, variant)
        x0s, params = task.sample_instances(8, seed=0)
        res = sw.solve(task, x0s, params)
        data = sw.TrajectoryData.from_solve(task, res, sw.chained_derivatives(task, res, spec.horizon))
        ds = build_dataset(data.select(res.converged), spec)
        assert ds.params.shape == (len(ds), task.nz + 1) and ds.param_dim == task.nz + 1
        # the last column is the normalised time to go of the chunk's start: 1 at t0 = 0, -1 + 2 / T at T - 1
        tau = ds.params[:, -1].numpy()
        np.testing.assert_allclose(tau, 2 * (task.horizon - ds.start.numpy()) / task.horizon - 1, atol=1e-6)
        cfg = sw.TrainConfig(policy=kind, epochs=3, batch_size=64, lr=3e-3, progress=False, num_threads=1,
                             sobolev_weight=0.01)
        policy = sw.train(ds, cfg).eval()
        path = sw.export_torchscript(policy, root / f"{name}_{kind}.pt")
        sw.export_native(policy, path.with_suffix(".safetensors"))
        out[kind] = (task, policy, path)
    return out


@pytest.mark.parametrize("backend", ["torchscript", "native"])
@pytest.mark.parametrize("kind", ["sob_diff", "sob_mlp"], ids=["state-diffusion", "torque-mlp"])
def test_time_to_go_policies_roll_out_the_same_in_cpp_and_python(time_policies, kind, backend):
    task, policy, path = time_policies[kind]
    if backend == "native":
        path = path.with_suffix(".safetensors")
    runner = sw.load_policy_runner(path)
    assert runner.time_to_go and runner.param_dim == task.nz + 1 == policy.param_dim
    x0s, params = task.sample_instances(4, seed=11)
    cpp = sw.rollout(task, x0s, params, runner, seed=3)
    py = sw.rollout(task, x0s, params, policy, seed=3)
    tol = 1e-4 if backend == "torchscript" else 1e-3  # as in test_cpp_rollout_equals_python_eager_rollout
    np.testing.assert_allclose(cpp.xs, py.xs, atol=tol)
    np.testing.assert_allclose(cpp.actions, py.actions, atol=tol)
    # the time to go is an input: the same observation at another time gives another output
    o = np.random.default_rng(0).normal(size=(1, task.no)).astype(np.float32)
    z = np.concatenate([params[:1], [[1.0]]], axis=1).astype(np.float32)
    late = z.copy()
    late[0, -1] = 1.0 / task.horizon
    if kind == "sob_mlp":
        early_a, late_a = runner.act(o, z), runner.act(o, late)
        with pytest.raises(ValueError, match=rf"params: expected shape \(1, {task.nz + 1}\), got \(1, {task.nz}\)"):
            runner.act(o, z[:, :-1])
    else:
        h, K, H = policy.history_steps, policy.num_steps, policy.horizon
        args = (np.repeat(o[:, None], h, 1), np.zeros((1, h, task.na), np.float32),
                np.random.default_rng(1).normal(size=(K, 1, H, task.na)).astype(np.float32))
        early_a, late_a = runner.sample_chunks(args[0], z, *args[1:]), runner.sample_chunks(args[0], late, *args[1:])
        with pytest.raises(ValueError, match=rf"params: expected shape \(1, {task.nz + 1}\), got \(1, {task.nz}\)"):
            runner.sample_chunks(args[0], z[:, :-1], *args[1:])
    # measured over training seeds 0-2: largest output change 0.034-0.083 (UR5 diffusion), 0.18-0.31 (pendulum MLP)
    assert np.abs(early_a - late_a).max() > 1e-3


def test_time_to_go_metadata_must_be_a_boolean(time_policies, tmp_path):
    _, policy, path = time_policies["sob_mlp"]
    module, meta = sw.load_torchscript(path)
    meta["time_to_go"] = "yes"
    module.save(str(tmp_path / "bad.pt"), _extra_files={"metadata.json": json.dumps(meta)})
    with pytest.raises(ValueError, match="time_to_go: expected a boolean in the metadata"):
        sw.load_policy_runner(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="time_to_go: expected a bool, got 'yes'"):
        ChunkSpec(time_to_go="yes")


@pytest.fixture(scope="module")
def relative_policy(tmp_path_factory):
    """A UR5 Sob+Diff policy whose chunks are relative to the last known action (``ChunkSpec.relative_actions``):
    (task, policy, TorchScript path); the native file beside it."""
    root = tmp_path_factory.mktemp("relative_policy")
    spec = ChunkSpec(horizon=8, history=1, action_steps=2, relative_actions=True)
    task = sw.make_task("ur5", "random_start_fixed_target")
    x0s, params = task.sample_instances(8, seed=0)
    res = sw.solve(task, x0s, params)
    data = sw.TrajectoryData.from_solve(task, res, sw.chained_derivatives(task, res, spec.horizon))
    ds = build_dataset(data.select(res.converged), spec)
    cfg = sw.TrainConfig(policy="sob_diff", epochs=3, batch_size=64, lr=3e-3, progress=False, num_threads=1,
                         sobolev_weight=0.01)
    policy = sw.train(ds, cfg).eval()
    path = sw.export_torchscript(policy, root / "relative.pt")
    sw.export_native(policy, path.with_suffix(".safetensors"))
    return task, policy, path


@pytest.mark.parametrize("backend", ["torchscript", "native"])
def test_relative_action_policies_roll_out_the_same_in_cpp_and_python(relative_policy, backend):
    task, policy, path = relative_policy
    if backend == "native":
        path = path.with_suffix(".safetensors")
    x0s, params = task.sample_instances(4, seed=11)
    cpp = sw.rollout(task, x0s, params, path, seed=3)
    py = sw.rollout(task, x0s, params, policy, seed=3)
    # a relative chunk adds the current state's features exactly, so float32 differences of one call (~2e-6) are
    # carried along rather than forgotten: measured 4e-5 of the largest state entry on the native file
    tol = 1e-4 * max(1.0, float(np.abs(py.xs).max()))
    np.testing.assert_allclose(cpp.xs, py.xs, atol=tol)
    np.testing.assert_allclose(cpp.actions, py.actions, atol=tol)
    # what the chunks are relative to: the realised action a_{t-1} is the features of the state x_t
    for i in range(len(x0s)):
        for t in (0, 9, task.horizon - 1):
            np.testing.assert_allclose(py.actions[i, t], task.action(np.zeros(task.nu), py.xs[i, t + 1]), atol=1e-5)


def test_direct_policies_refuse_relative_actions(relative_policy):
    task, policy, _ = relative_policy
    with pytest.raises(ValueError, match="spec.relative_actions: a direct"):
        sw.MLPPolicy(policy.task, policy.spec, policy.normalisers)
