"""The set-up every recipe's ``train(cfg, ...)`` shares, written once (the training side of
:mod:`grukit.train.recipe`, which holds the CLI side).

A recipe's training function (``grukit/tasks/<task>/train.py``) keeps what is its own — reading its
data, building its model, module and loaders, scoring the best model, what goes into its metrics — and
takes the rest from a :class:`RecipeRun`:

1. :meth:`RecipeRun.start` — refuse an ``--output-dir`` that holds a run (before any work), restore a
   resumed run's options (:func:`grukit.train.resumed_config`: stored options win unless given, a
   conflicting one is refused), set ``--threads``;
2. :meth:`RecipeRun.data_dir_of` — the data folder: ``--data-dir``, ``$GRUKIT_DATA/<name>``, or on
   ``--resume`` the folder the run recorded (refused if its contents changed);
3. :meth:`RecipeRun.build` — refuse a model too large for the memory before building it, then seed and
   build it (the initial weights follow ``cfg.seed``);
4. :meth:`RecipeRun.fit` — :func:`grukit.train.fit` with the run's shared arguments (task, folder,
   resume, epochs, seed, devices, progress, ``config.json`` = the config plus ``threads``, the data
   folder's fingerprint), leaving the folder unfinished for the scores;
5. :meth:`RecipeRun.finish` — write ``metrics.json``, mark the run complete, return the record with its
   ``"run"`` folder.

Example (the shape of ``grukit/tasks/sentiment/train.py``)::

    def train(cfg, data_dir=None, *, given=None, **options: Unpack[TrainOptions]):
        run = RecipeRun.start("sentiment", cfg, given=given, flags=FLAGS, **options)
        cfg = run.cfg  # a resumed run's own options
        texts, labels = load(run.data_dir_of("sst2", data_dir))
        model = run.build(lambda: SentimentGRU(...), f"--hidden {cfg.hidden_size}")
        result = run.fit(SentimentModule(model, lr=cfg.lr), train_dl, dev_dl, monitor="val_acc", mode="max")
        return run.finish(result, {"task": "sentiment", "model": {...}, ...})

Lightning is imported by :meth:`RecipeRun.fit` only.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .loop import FitResult

C = TypeVar("C")
M = TypeVar("M")


class TrainOptions(TypedDict, total=False):
    """The keyword options every recipe's ``train(cfg, data_dir=None, *, ..., **options)`` takes and hands to
    :meth:`RecipeRun.start` (from the CLI: :meth:`grukit.train.recipe.RunOptions.fit_kwargs`, which adds
    ``data_dir``). Defaults: a fresh ``runs/<task>-<stamp>/`` folder, no resume, no overwrite, torch's own
    thread count, Lightning's ``"auto"`` devices and strategy on one node, a progress bar."""

    output_dir: str | os.PathLike | None
    resume: str | os.PathLike | None
    overwrite: bool
    threads: int | None
    devices: Any
    num_nodes: int
    strategy: Any
    progress: bool


@dataclasses.dataclass
class RecipeRun(Generic[C]):
    """One recipe training run's shared set-up: its config (a resumed run's own) and the options every
    recipe's ``train`` takes. Make it with :meth:`start`.

    Attributes:
        task: the recipe's name (the run folder's prefix: ``runs/<task>-<stamp>/``).
        cfg: the run's config dataclass (``epochs`` and ``seed`` fields), after ``--resume`` restored it.
        threads: the torch CPU threads in use (recorded in ``config.json``).
        data_dir: the data folder read (set by :meth:`data_dir_of`; fingerprinted into ``config.json``).
    """

    task: str
    cfg: C
    threads: int
    output_dir: str | os.PathLike | None = None
    resume: str | os.PathLike | None = None
    overwrite: bool = False
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: Any = "auto"
    progress: bool = True
    data_dir: Path | None = None

    @classmethod
    def start(
        cls,
        task: str,
        cfg: C,
        *,
        given: Iterable[str] | None = None,
        flags: Mapping[str, str] | None = None,
        **options: Unpack[TrainOptions],
    ) -> RecipeRun[C]:
        """Check the run folder, restore a resumed run's options, set the threads — before any work.

        Args:
            task: the recipe's name.
            cfg: the config the command line built (a dataclass with ``epochs`` and ``seed``).
            given: for :func:`grukit.train.resumed_config`: the fields the user typed.
            flags: for :func:`grukit.train.resumed_config`: how the command line spells a field.
            **options: the shared options (:class:`TrainOptions`).

        Raises:
            UserInputError: ``output_dir`` holds a run (without ``overwrite``), or a given option
                conflicts with the resumed run's.
            RunAlreadyComplete: ``resume`` names a complete run and no larger ``--epochs`` was given.
        """
        from .run import check_output_dir, resumed_config
        from .seed import set_threads

        opts: dict[str, Any] = dict(options)
        threads = opts.pop("threads", None)
        run = cls(task, cfg, 0, **opts)
        check_output_dir(run.output_dir, resume=run.resume, overwrite=run.overwrite)
        if run.resume is not None:
            run.cfg = resumed_config(run.resume, cfg, given=given, flags=flags)
        run.threads = set_threads(threads)
        return run

    def data_dir_of(self, name: str, data_dir: str | os.PathLike | None) -> Path:
        """The data folder of data set ``name`` (:func:`grukit.datasets.find_data_dir`; on ``--resume``
        the recorded one, refused if changed), remembered for :meth:`fit`'s fingerprint."""
        from ..datasets import find_data_dir
        from .run import resolve_input

        found = resolve_input(self.resume, "--data-dir", data_dir, lambda p: find_data_dir(name, p))
        self.data_dir = Path(found)
        return found

    def build(self, build: Callable[[], M], what: str) -> M:
        """``build()`` seeded by ``cfg.seed``, after :func:`grukit.train.check_model_fits` (``what``: the
        options that size the model, for its message, e.g. ``"--hidden 64 --layers 2"``)."""
        from .run import check_model_fits
        from .seed import seed_everything

        check_model_fits(build, what)
        seed_everything(self.cfg.seed)  # type: ignore[attr-defined]
        return build()

    def run_config(self) -> dict[str, Any]:
        """What ``config.json`` records by default: every config field, plus ``threads``."""
        return {**dataclasses.asdict(self.cfg), "threads": self.threads}  # type: ignore[call-overload]

    def fit_options(self) -> dict[str, Any]:
        """The arguments of :func:`grukit.train.fit` that come from the shared options as they were given:
        ``output_dir resume overwrite devices num_nodes strategy progress`` (for a recipe function that
        calls ``fit`` itself, such as digits' ``train_model``)."""
        return dict(
            output_dir=self.output_dir,
            resume=self.resume,
            overwrite=self.overwrite,
            devices=self.devices,
            num_nodes=self.num_nodes,
            strategy=self.strategy,
            progress=self.progress,
        )

    def fit(self, module: Any, *loaders: Any, **kwargs: Any) -> Any:
        """:func:`grukit.train.fit` with this run's shared arguments; ``kwargs`` are the recipe's own (and
        may replace ``config``, ``inputs`` or ``finish``). The run is left unfinished (``finish=False``):
        :meth:`finish` completes it after the scores are written.

        Returns:
            fit's :class:`~grukit.train.FitResult` (typed ``Any``: its ``best_model()`` is the recipe's own
            model class).
        """
        from .loop import fit

        shared: dict[str, Any] = dict(
            task=self.task,
            epochs=self.cfg.epochs,  # type: ignore[attr-defined]
            seed=self.cfg.seed,  # type: ignore[attr-defined]
            **self.fit_options(),
            config=self.run_config(),
            inputs=None if self.data_dir is None else {"--data-dir": self.data_dir},
            finish=False,
        )
        return fit(module, *loaders, **{**shared, **kwargs})

    @staticmethod
    def finish(result: FitResult, record: Mapping[str, Any] | None) -> dict[str, Any]:
        """Write ``record`` as the run's ``metrics.json`` (none when ``record`` is None), mark the run
        complete (last: the folder is whole) and return the record with ``"run"``: the folder."""
        if record is not None:
            result.run.write_metrics(**record)
        result.run.complete()
        return {**(record or {}), "run": str(result.run.path)}


__all__ = ["RecipeRun", "TrainOptions"]
