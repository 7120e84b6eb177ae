"""XManager for real: the launcher's job specs built with the installed `xmanager` package, and a 2-point sweep
launched on XManager's local executor (the work units are local processes: no container). XManager lives in its own
interpreter when it cannot share the test environment (its protobuf<7 pin; see NOTES-issue-23.md): set
LCJAX_XM_PYTHON to a Python that has xmanager and lcjax's dependencies; without one the tests skip."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _xm_python() -> str:
  if os.environ.get("LCJAX_XM_PYTHON"):
    return os.environ["LCJAX_XM_PYTHON"]
  try:
    import xmanager  # noqa: F401
  except ImportError:
    pytest.skip("xmanager is not installed here and LCJAX_XM_PYTHON is not set")
  return sys.executable


def _run(args, tmp_path, timeout=600, **env):
  env = {**os.environ, "PYTHONPATH": REPO, "HOME": str(tmp_path), "XLA_FLAGS": "", "LCJAX_REPO": REPO, **env}
  return subprocess.run([_xm_python(), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


# A two-point sweep of the tiny passkey decoder (plain RoPE, ABF), two training steps each.
EXPERIMENT = textwrap.dedent("""
    import os
    from lcjax.launch.experiments import load_experiment
    _PASSKEY = load_experiment(os.path.join(os.environ["LCJAX_REPO"], "experiments", "passkey.py"))
    def get_config(arg=None):
      cfg = _PASSKEY.get_config(",".join(filter(None, ["runlocal,seq_len=96", arg])))
      cfg.train.steps = 2
      cfg.retrieval.num_samples = 2
      return cfg
    def sweep(add, arg=None):
      add(arg="variant=rope")
      add(arg="variant=abf")
""")

SPEC_SCRIPT = textwrap.dedent("""
    import json, sys
    from xmanager import xm
    from xmanager.xm_local import executables
    from lcjax.launch import xm as launcher
    jobs = launcher.build_jobs(sys.argv[1], sys.argv[2])
    packageable = launcher.launcher_packageable()
    exe = executables.LocalBinary(name="lcjax", command=packageable.executable_spec.path, args=packageable.args,
                                  env_vars=packageable.env_vars)
    units = launcher.work_unit_jobs(jobs, exe)
    print(json.dumps({"path": packageable.executable_spec.path, "exe_args": packageable.args.to_list(),
                      "executor": type(packageable.executor_spec).__qualname__,
                      "pythonpath": packageable.env_vars["PYTHONPATH"],
                      "units": [{"name": u.name, "args": xm.merge_args(exe.args, u.args).to_list(),
                                 "executor": type(u.executor).__qualname__} for u in units]}))
""")


def test_job_specs_with_the_installed_package(tmp_path):
  (tmp_path / "exp.py").write_text(EXPERIMENT)
  out = _run(["-c", SPEC_SCRIPT, str(tmp_path / "exp.py"), "/tmp/xm_sweep"], tmp_path, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  spec = json.loads(out.stdout.strip().splitlines()[-1])
  assert spec["exe_args"] == ["-m", "lcjax.launch.main"] and spec["executor"] == "LocalSpec"
  assert spec["pythonpath"].split(os.pathsep)[0] == REPO
  assert [u["name"] for u in spec["units"]] == ["passkey_rope_0", "passkey_abf_1"]  # one work unit per sweep point
  assert all(u["executor"] == "Local" for u in spec["units"])
  first, second = (u["args"] for u in spec["units"])
  assert first[:3] == ["-m", "lcjax.launch.main", f"--config={tmp_path / 'exp.py'}:variant=rope"]
  assert second[2:] == [f"--config={tmp_path / 'exp.py'}:variant=abf", "--workdir=/tmp/xm_sweep/1"]


@pytest.mark.slow
def test_real_local_launch_of_a_two_point_sweep(tmp_path):
  (tmp_path / "exp.py").write_text(EXPERIMENT)
  out = _run(["-m", "lcjax.launch.xm", f"--config={tmp_path / 'exp.py'}", f"--workdir={tmp_path / 'wd'}"], tmp_path)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  assert "2 work units finished" in out.stdout
  for i, variant in enumerate(("rope", "abf")):
    summary = [json.loads(line.split("] ", 1)[1]) for line in (out.stdout + out.stderr).splitlines()
               if line.startswith(f"[passkey_{variant}_{i}]") and '"step"' in line]
    assert summary and summary[-1]["step"] == 2, (variant, summary)
    assert (tmp_path / "wd" / str(i) / "retrieval.json").is_file()
    assert (tmp_path / "wd" / str(i) / "model").is_dir()
  assert (tmp_path / ".xmanager" / "experiments.sqlite3").is_file()  # XManager's local record of the experiment
