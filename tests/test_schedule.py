"""The one epoch schedule of the probe and metrics callbacks: known answers, gating, bad values, presets."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from gan_interp.callbacks import metrics_callback
from gan_interp.callbacks.metrics_callback import MetricsCallback
from gan_interp.callbacks.probe_callback import ProbeCallback
from gan_interp.callbacks.schedule import EpochSchedule, ScheduledCallback, reject_schedule_keys, runs_here
from gan_interp.errors import ConfigError
from gan_interp.metrics.settings import MetricsSettings
from gan_interp.train import scheduled_callbacks


def _due(schedule: EpochSchedule, n_epochs: int = 12) -> list[int]:
    return [e for e in range(n_epochs) if schedule.due(e)]


@pytest.mark.parametrize(
    ("kwargs", "due"),
    [
        ({}, []),
        ({"epochs": [0]}, [0]),
        ({"epochs": [9, 0, 9]}, [0, 9]),  # sorted, duplicates dropped
        ({"every_n_epochs": 1}, list(range(12))),
        ({"every_n_epochs": 5}, [4, 9]),  # 0-based: after the 5th and the 10th epoch
        ({"epochs": [0, 3], "every_n_epochs": 2}, [0, 1, 3, 5, 7, 9, 11]),
        ({"epochs": [2], "every_n_epochs": 0, "at_end": False}, [2]),
    ],
)
def test_due_epochs_known_answers(kwargs, due):
    assert _due(EpochSchedule(**kwargs)) == due


def test_defaults_and_config_nodes():
    assert EpochSchedule() == EpochSchedule(epochs=[], every_n_epochs=0, at_end=True)
    node = OmegaConf.create({"epochs": [3, 1], "every_n_epochs": 4, "at_end": False})
    assert EpochSchedule.from_config(node, "schedule.probes") == EpochSchedule(
        epochs=[1, 3], every_n_epochs=4, at_end=False
    )
    assert EpochSchedule.from_config(None) == EpochSchedule()
    same = EpochSchedule(epochs=[2])
    assert EpochSchedule.from_config(same) is same


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            {"epochs": [-1]},
            r"schedule.probes.epochs=\[-1\] must be a list of 0-based epoch numbers >= 0, e.g. \[0, 9\]",
        ),
        ({"epochs": 3}, r"schedule.probes.epochs=3 must be a list of 0-based epoch numbers"),
        ({"epochs": ["1"]}, r"schedule.probes.epochs=\['1'\] must be a list"),
        ({"every_n_epochs": -2}, r"schedule.probes.every_n_epochs=-2 must be an integer >= 1, or 0 for off"),
        ({"every_n_epochs": None}, r"schedule.probes.every_n_epochs=None must be an integer >= 1, or 0 for off"),
        ({"every_n_epochs": True}, r"schedule.probes.every_n_epochs=True must be an integer"),
        ({"at_end": "yes"}, r"schedule.probes.at_end='yes' must be true or false"),
        (
            {"on_train_end": True},
            r"schedule.probes.on_train_end is not a schedule option \(renamed to at_end\); "
            r"options: epochs, every_n_epochs, at_end",
        ),
        ({"at_train_end": True}, r"schedule.probes.at_train_end is not a schedule option \(renamed to at_end\)"),
        ({"every": 2}, r"schedule.probes.every is not a schedule option; options: epochs, every_n_epochs, at_end"),
        ([0, 1], r"schedule.probes=\[0, 1\] must be a mapping with epochs, every_n_epochs and at_end"),
    ],
)
def test_bad_values_are_one_line_config_errors(node, message):
    with pytest.raises(ConfigError, match=message) as err:
        EpochSchedule.from_config(node, "schedule.probes")
    assert "\n" not in str(err.value)


def test_schedule_keys_left_in_a_probes_or_metrics_node_point_to_the_schedule():
    reject_schedule_keys({"probes": {}, "seed": 0}, "probes")  # fine
    with pytest.raises(ConfigError, match=r"probes.epochs is not set there any more; use schedule.probes.epochs"):
        reject_schedule_keys({"epochs": [0]}, "probes")
    with pytest.raises(
        ConfigError, match=r"metrics.at_train_end is not set there any more; use schedule.metrics.at_end"
    ):
        reject_schedule_keys({"at_train_end": True}, "metrics")


class Recorder(ScheduledCallback):
    def __init__(self, schedule) -> None:
        super().__init__(schedule, "schedule.test")
        self.calls: list[tuple[int, str]] = []

    def run(self, trainer, pl_module, epoch, source):
        self.calls.append((epoch, source))


def _trainer(epoch: int, rank_zero: bool = True, fast_dev_run: bool = False):
    return SimpleNamespace(current_epoch=epoch, is_global_zero=rank_zero, fast_dev_run=fast_dev_run)


def _fit(cb: ScheduledCallback, n_epochs: int, **kwargs) -> None:
    for epoch in range(n_epochs):
        cb.on_train_epoch_end(_trainer(epoch, **kwargs), None)
    cb.on_train_end(_trainer(n_epochs, **kwargs), None)  # Lightning's current_epoch is past the last one here


def test_last_finished_epoch_runs_at_end_once():
    cb = Recorder({"epochs": [0, 3], "every_n_epochs": 2})
    _fit(cb, 5)
    assert cb.calls == [(0, "train_epoch_end"), (1, "train_epoch_end"), (3, "train_epoch_end"), (4, "train_end")]
    assert cb.last_epoch == 4 and cb.done == {0, 1, 3, 4}
    cb = Recorder({"epochs": [2]})
    _fit(cb, 3)
    assert cb.calls == [(2, "train_epoch_end")]  # the last epoch already ran: not again at the end
    cb = Recorder({"epochs": [0], "at_end": False})
    _fit(cb, 3)
    assert cb.calls == [(0, "train_epoch_end")]
    cb = Recorder({})
    cb.on_train_end(_trainer(0), None)  # no epoch finished (e.g. resumed past max_epochs): nothing to run
    assert cb.calls == []


def test_rank_zero_only_and_never_under_fast_dev_run():
    assert runs_here(_trainer(0)) and not runs_here(_trainer(0, rank_zero=False))
    assert not runs_here(_trainer(0, fast_dev_run=True)) and not runs_here(_trainer(0, fast_dev_run=1))
    for kwargs in ({"rank_zero": False}, {"fast_dev_run": True}):
        cb = Recorder({"epochs": [0], "every_n_epochs": 1})
        _fit(cb, 2, **kwargs)
        assert cb.calls == [] and cb.last_epoch == 1


def test_done_epochs_survive_a_resume():
    cb = Recorder({"epochs": [0, 1]})
    _fit(cb, 2)
    resumed = Recorder({"epochs": [0, 1]})
    resumed.load_state_dict(cb.state_dict())
    assert cb.state_dict() == {"done": [0, 1]}
    resumed.on_train_end(_trainer(2), None)
    resumed.on_train_epoch_end(_trainer(1), None)
    assert resumed.calls == []
    legacy = Recorder({})
    legacy.load_state_dict({"probed": [0, 3]})  # the ProbeCallback's key before the shared schedule
    assert legacy.done == {0, 3}


def test_probe_and_metrics_callbacks_share_the_schedule(monkeypatch):
    """Both callbacks are ScheduledCallbacks: the same epochs and the same sources for the same schedule."""
    evaluated: list[tuple[int, str]] = []
    monkeypatch.setattr(
        metrics_callback,
        "evaluate_and_record",
        lambda model, dm, settings, out, name, epoch, step, loggers, source: evaluated.append((epoch, source)),
    )
    schedule = {"epochs": [0, 3], "every_n_epochs": 2}
    metrics = MetricsCallback(MetricsSettings(metrics={"quality": {}}), schedule)
    probes = ProbeCallback(probes={}, schedule=schedule)
    assert isinstance(metrics, ScheduledCallback) and isinstance(probes, ScheduledCallback)
    assert metrics.schedule == probes.schedule

    def trainer(epoch: int) -> SimpleNamespace:
        return SimpleNamespace(
            current_epoch=epoch,
            is_global_zero=True,
            fast_dev_run=False,
            datamodule=object(),
            default_root_dir="/tmp",
            global_step=epoch,
            loggers=[],
        )

    for epoch in range(5):
        metrics.on_train_epoch_end(trainer(epoch), None)
    metrics.on_train_end(trainer(5), None)
    assert evaluated == [(0, "train_epoch_end"), (1, "train_epoch_end"), (3, "train_epoch_end"), (4, "train_end")]
    with pytest.raises(ConfigError, match=r"schedule.metrics.every_n_epochs=-1"):
        MetricsCallback(MetricsSettings(), {"every_n_epochs": -1})


# -- the config group ------------------------------------------------------------------------------
OLD = {  # the schedules the probe/metric sets and the studies carried before conf/schedule/
    "default": ([0], 0, True, [], 0, True),
    "dense": ([0], 5, True, [], 1, True),  # probes=all, metrics=all
    "at_end": ([], 0, True, [], 0, True),  # probes=dissection
    "every_epoch": ([], 1, True, [], 1, True),
}


def _schedules(cfg) -> tuple:
    p = EpochSchedule.from_config(cfg.schedule.probes)
    m = EpochSchedule.from_config(cfg.schedule.metrics)
    return (p.epochs, p.every_n_epochs, p.at_end, m.epochs, m.every_n_epochs, m.at_end)


@pytest.mark.parametrize("preset", sorted(OLD))
def test_presets_known_answers(make_cfg, preset):
    assert _schedules(make_cfg([f"schedule={preset}"])) == OLD[preset]


@pytest.mark.parametrize(
    ("experiment", "expected"),
    [
        ("arch_compare", ([3], 0, True, [3], 0, True)),
        ("kgan_baselines", ([], 0, True, [5], 0, True)),
        ("probes_over_epochs", ([], 1, False, [], 1, True)),
    ],
)
def test_studies_keep_their_schedules(make_cfg, experiment, expected):
    assert _schedules(make_cfg([f"experiment={experiment}"])) == expected


def test_schedule_and_probe_choice_are_independent(make_cfg):
    cfg = make_cfg(["probes=all", "metrics=all", "schedule.probes.epochs=[0,9]", "schedule.metrics.every_n_epochs=3"])
    probes, metrics = scheduled_callbacks(cfg)
    assert isinstance(probes, ProbeCallback) and "dissection" in probes.probes
    assert probes.schedule == EpochSchedule(epochs=[0, 9], every_n_epochs=0, at_end=True)
    assert isinstance(metrics, MetricsCallback) and "fid" in metrics.settings.metrics
    assert metrics.schedule == EpochSchedule(epochs=[], every_n_epochs=3, at_end=True)
    assert scheduled_callbacks(make_cfg(["probes=none", "metrics=none"])) == []
    with pytest.raises(ConfigError, match="schedule.probes.every_n_epochs=-1"):
        scheduled_callbacks(make_cfg(["schedule.probes.every_n_epochs=-1"]))
    with pytest.raises(ConfigError, match="probes.epochs is not set there any more; use schedule.probes.epochs"):
        scheduled_callbacks(make_cfg(["+probes.epochs=[0]"]))
