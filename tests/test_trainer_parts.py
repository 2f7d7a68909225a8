"""Distributed training (issue 5), the trainer's pure parts: the reference command lines, mixed
precision, the schedule, seeds, metrics, checkpoints and the checks on options and devices.
The torchrun runs are in test_training.py."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from cassandra_dali.training import checkpoint, options, precision, schedule
from cassandra_dali.training.metrics import correct_topk
from cassandra_dali.training.resume import augment_seed, order_seed
from cassandra_dali.training.trainer import build_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "imagenette"
FILE_SCRIPT = EXAMPLES / "distrib_train_from_file.py"
CASSANDRA_SCRIPT = EXAMPLES / "distrib_train_from_cassandra.py"


# ----------------------------------------------------------------------------------------------
# Pure parts
# ----------------------------------------------------------------------------------------------


def _load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_command_lines_parse() -> None:
    common = ["-a", "resnet50", "--dali_cpu", "--b", "128", "--loss-scale", "128.0",
              "--workers", "4", "--lr=0.4", "--opt-level", "O2"]
    file_args = _load_script(FILE_SCRIPT).parse_args([*common, "ROOT/train", "ROOT/val"])
    cass_args = _load_script(CASSANDRA_SCRIPT).parse_args([
        *common, "--train-data-table", "imagenette.data_train", "--train-rows-fn", "train.rows",
        "--val-data-table", "imagenette.data_val", "--val-rows-fn", "val.rows",
    ])
    assert file_args.train_dir == Path("ROOT/train") and file_args.val_dir == Path("ROOT/val")
    assert cass_args.train_data_table == "imagenette.data_train"
    assert cass_args.val_rows_fn == Path("val.rows")
    for args in (file_args, cass_args):
        opts = options.options_from_args(args)
        assert (opts.arch, opts.batch_size, opts.workers, opts.lr) == ("resnet50", 128, 4, 0.4)
        assert (opts.opt_level, opts.loss_scale, opts.dali_cpu) == ("O2", "128.0", True)
        assert opts.lr_milestones == (30, 60, 80) and opts.warmup_epochs == 5


def test_cassandra_script_reads_the_server_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CASSANDRA_HOST", "10.1.2.3")
    monkeypatch.setenv("CASSANDRA_PORT", "19042")
    args = _load_script(CASSANDRA_SCRIPT).parse_args([])
    assert (args.host, args.port) == ("10.1.2.3", 19042)
    args = _load_script(CASSANDRA_SCRIPT).parse_args(["--host", "h", "--port", "1"])
    assert (args.host, args.port) == ("h", 1)


@pytest.mark.parametrize(
    ("level", "device", "dtype", "scaler"),
    [
        ("O0", "cpu", None, False),
        ("O0", "cuda", None, False),
        ("O1", "cpu", torch.bfloat16, False),
        ("O2", "cpu", torch.bfloat16, False),
        ("O3", "cpu", torch.bfloat16, False),
        ("O1", "cuda", torch.float16, True),
        ("O2", "cuda", torch.float16, True),
    ],
)
def test_opt_levels(level: str, device: str, dtype: Any, scaler: bool) -> None:
    p = precision.Precision.create(level, "128.0", device)
    assert p.autocast_dtype == dtype
    assert p.uses_scaler is scaler


def test_loss_scale() -> None:
    assert precision.parse_loss_scale(None) is None
    assert precision.parse_loss_scale("dynamic") is None
    assert precision.parse_loss_scale("128.0") == 128.0
    for bad in ("0", "-1", "inf", "big"):
        with pytest.raises(ValueError, match="loss-scale"):
            precision.parse_loss_scale(bad)
    with pytest.raises(ValueError, match="opt-level"):
        precision.Precision.create("O4", None, "cpu")
    # No scaler without fp16: a pass-through that CPU runs can call unconditionally.
    cpu = precision.Precision.create("O2", "128", "cpu").grad_scaler()
    assert not cpu.is_enabled()
    loss = torch.tensor(2.0)
    assert cpu.scale(loss) is loss


def test_schedule_matches_the_reference() -> None:
    # DALI's example: lr * batch * world / 256; linear warm-up over 5 epochs; /10 at 30, 60, 80.
    base = schedule.scaled_lr(0.4, 128, 8)
    assert base == pytest.approx(1.6)
    steps = 100
    assert schedule.learning_rate(base, 0, 0, steps) == pytest.approx(base / 500)
    assert schedule.learning_rate(base, 4, 99, steps) == pytest.approx(base)
    assert schedule.learning_rate(base, 5, 0, steps) == pytest.approx(base)
    assert schedule.learning_rate(base, 29, 50, steps) == pytest.approx(base)
    assert schedule.learning_rate(base, 30, 0, steps) == pytest.approx(base * 0.1)
    assert schedule.learning_rate(base, 60, 0, steps) == pytest.approx(base * 0.01)
    assert schedule.learning_rate(base, 80, 0, steps) == pytest.approx(base * 0.001)
    assert schedule.learning_rate(base, 89, 99, steps) == pytest.approx(base * 0.001)
    # Warm-up rises monotonically, iteration by iteration.
    rates = [schedule.learning_rate(base, e, s, steps) for e in range(5) for s in range(steps)]
    assert all(a < b for a, b in itertools.pairwise(rates))


def test_seeds() -> None:
    # The order seed is shared by all ranks; augmentation seeds differ per rank and per resume.
    assert order_seed(7, 0) == 7 and order_seed(7, 3) == 10
    seeds = {augment_seed(7, e, r) for e in range(3) for r in range(4)}
    assert len(seeds) == 12


def test_correct_topk() -> None:
    output = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.05], [0.2, 0.3, 0.5]])
    target = torch.tensor([1, 1, 0])
    top1, top2, top5 = correct_topk(output, target, (1, 2, 5))
    assert (int(top1), int(top2), int(top5)) == (1, 2, 3)  # top-5 of 3 classes: everything


def test_build_model_by_name() -> None:
    model = build_model("resnet18", 10)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="unknown architecture 'resnet5O'"):
        build_model("resnet5O", 10)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    state = {"epoch": 3, "arch": "linear", "num_classes": 2, "state_dict": model.state_dict(),
             "optimizer": optimizer.state_dict(), "scaler": {}, "best_top1": 12.5}
    path = checkpoint.save(state, tmp_path / "ck", is_best=True)
    assert sorted(p.name for p in path.parent.iterdir()) == [checkpoint.LATEST, checkpoint.BEST]
    loaded = checkpoint.load(tmp_path / "ck", torch.device("cpu"))  # a directory works too
    assert loaded["epoch"] == 3 and loaded["best_top1"] == 12.5
    assert torch.equal(loaded["state_dict"]["weight"], model.weight)
    momentum = loaded["optimizer"]["state"][0]["momentum_buffer"]
    assert torch.equal(momentum, optimizer.state[model.weight]["momentum_buffer"])
    checkpoint.check_compatible(loaded, "linear", 2, path)
    with pytest.raises(ValueError, match="arch='linear'"):
        checkpoint.check_compatible(loaded, "resnet18", 2, path)
    with pytest.raises(FileNotFoundError, match="--resume"):
        checkpoint.load(tmp_path / "missing.pth.tar", torch.device("cpu"))


def test_checkpoints_go_to_a_run_directory_named_in_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """Without --checkpoint-dir nothing lands in the current directory (the checkout, when a
    script runs from examples/), and the log says where the checkpoint went."""
    repo = EXAMPLES.parents[1]
    monkeypatch.chdir(EXAMPLES)
    monkeypatch.delenv("CASSANDRA_DALI_CACHE", raising=False)
    for script, data in ((FILE_SCRIPT, ["ROOT/train", "ROOT/val"]), (CASSANDRA_SCRIPT, [])):
        opts = options.options_from_args(_load_script(script).parse_args(["-a", "resnet18", *data]))
        default = checkpoint.directory(opts.checkpoint_dir, opts.arch)
        assert default.is_absolute() and default.name.startswith("resnet18-")
        assert not default.is_relative_to(Path.cwd()) and not default.is_relative_to(repo)
        assert default.parent == Path.home() / ".cache" / "cassandra-dali" / "runs"
    # Written, with the cache moved to where the test may write.
    monkeypatch.setenv("CASSANDRA_DALI_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    caplog.set_level("INFO", logger=checkpoint.__name__)
    path = checkpoint.save({"epoch": 1}, checkpoint.directory(None, "linear"))
    assert path.parent.parent == tmp_path / "cache" / "runs" and path.is_file()
    assert list(work.iterdir()) == []
    assert str(path) in caplog.text
    assert checkpoint.directory(tmp_path / "mine", "linear") == tmp_path / "mine"


def test_data_position_must_match_the_run() -> None:
    run = {"world_size": 2, "batch_size": 16, "max_iters": None, "source": "CassandraSource",
           "seed": 7, "dali": "2.4.0"}
    saved = checkpoint.data_state([b"rank0", b"rank1"], [11, 12], order_seed=7, **run)
    assert checkpoint.data_mismatch(saved, **run) is None
    assert saved["pipelines"] == [b"rank0", b"rank1"] and saved["augment_seeds"] == [11, 12]
    reasons = {
        "world_size": "written by 2 ranks, this run has 4; start 2 processes",
        "batch_size": "--b (batch per rank) 16, this run has 32",
        "max_iters": "--max-iters unset, this run has 3",
        "source": "source 'CassandraSource', this run has 'FileSource'",
        "seed": "--seed 7, this run has 8",
        "dali": "DALI version '2.4.0', this run has '2.5.0'",
    }
    changed = {"world_size": 4, "batch_size": 32, "max_iters": 3, "source": "FileSource",
               "seed": 8, "dali": "2.5.0"}
    for key, value in changed.items():
        assert reasons[key] in str(checkpoint.data_mismatch(saved, **{**run, key: value}))
    assert "older version" in str(checkpoint.data_mismatch(None, **run))
    with pytest.raises(ValueError, match="seed"):
        checkpoint.data_state([], [], order_seed=0, world_size=1)


def test_gpu_per_process() -> None:
    from cassandra_dali.gpus import GpuError, device_index

    everything: dict[str, str] = {}
    assert device_index(0, 8, everything) == 0  # torchrun --nproc_per_node
    assert device_index(5, 8, everything) == 5
    # One GPU per task: the scheduler set CUDA_VISIBLE_DEVICES for each task.
    assert device_index(3, 1, {"CUDA_VISIBLE_DEVICES": "3"}) == 0
    # Two ranks on a one-GPU machine: refused, not both on GPU 0.
    with pytest.raises(GpuError, match=r"LOCAL_RANK=1, but this process sees 1 GPU\(s\)"):
        device_index(1, 1, everything)
    with pytest.raises(GpuError, match=r"LOCAL_RANK=3, but this process sees 2 GPU\(s\)"):
        device_index(3, 2, {"CUDA_VISIBLE_DEVICES": "0,1"})
    with pytest.raises(GpuError, match="no GPU"):
        device_index(0, 0, everything)


def test_no_silent_cpu_training_beside_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """A torch that cannot use the machine's GPUs (CPU-only, or built for a newer CUDA than the
    driver) must not turn a GPU job into CPU training: the trainer stops and says why."""
    from cassandra_dali.gpus import GpuError
    from cassandra_dali.training import distributed

    monkeypatch.setattr(distributed, "dali_gpu_count", lambda: (2, ""))
    with pytest.raises(GpuError, match=r"DALI sees 2 GPU\(s\) but torch .* cannot use them"):
        distributed.refuse_silent_cpu_fallback()
    monkeypatch.setattr(distributed, "dali_gpu_count", lambda: (0, "no driver"))
    distributed.refuse_silent_cpu_fallback()  # no GPU at all: CPU training is what is meant


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="--val-size"):
        options.TrainOptions(crop_size=224, val_size=200)
    with pytest.raises(ValueError, match="--max-iters"):
        options.TrainOptions(max_iters=0)
