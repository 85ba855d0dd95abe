"""The framework-free predictor behind the HTTP service (no BentoML import: principle 8, thin serving).

:class:`Predictor` holds one fitted :class:`nbrisk.models.risk_model.RiskModel` and its registry identity
(:class:`ServedModel`), and turns already-parsed request objects into answers shaped exactly like ``POST /v1/risk``
(``docs/http-api.md``)::

    {"model": {"name", "version", "alias", "trained_at", "synthetic_training_data", "label"},
     "results": [{"patient_id", "horizons_months", "relapse": {"estimate", "lower", "upper"}, "trm": {...},
                  "efs": {...}, "os": {...}, "risk_group", "warnings": [...]}]}

Records are validated with the record contract's own rules (:mod:`nbrisk.features.record`, the code that checks
cohort files), so the service accepts exactly what ``nbrisk data validate`` accepts. Everything is vectorised over
patients: one validation, one feature transform and one model prediction per request, whether it holds 1 or 1,000
patients.

**Fast path.** A one-patient answer is a few hundred numbers, yet building, indexing and copying pandas frames used to
cost most of its 10–15 ms. The predictor therefore builds no DataFrame on the way from JSON to answer: small
requests are typed by :func:`nbrisk.features.record.fast_validate` (plain Python, per-field parsers generated from the
contract's field table; it defers anything not plainly valid), larger or doubtful ones by
:func:`nbrisk.features.record.validate_columns` (the column rules behind ``validate_records``, on numpy arrays), and
the typed columns go to the model as a mapping of arrays. ``Predictor(..., fast=False)`` keeps the DataFrame path
(``validate_records`` on a raw frame, frames into the model): the reference the property tests compare the fast
path with, answer for answer and error for error.

**Garbage collection.** A loaded model, MLflow, pandas and scikit-learn leave ~300,000 objects that CPython's cyclic
collector re-traverses on every generation-2 collection (240–270 ms each, one request in ~1,000 on this service).
:func:`freeze_heap` moves everything alive once the model is loaded and warmed up into the permanent generation
(``gc.freeze``), so those collections only look at what requests allocate (< 1 ms); call it again after a model swap.

Risk groups need the 2-year EFS, so 24 months is always predicted (and dropped from the answer when not asked for).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from nbrisk.core import INTENDED_USE, SYNTHETIC_LABEL, NbriskError, RiskCurves, first_line, training_summary_of
from nbrisk.serving.schemas import InvalidInput, ProblemDetail, RequestError, RiskRequest

logger = logging.getLogger("nbrisk.serving")

#: Horizon of the risk groups (2-year EFS; the cut-offs are stored with the model).
RISK_GROUP_HORIZON_MONTHS = 24.0
#: Decimals kept in answers: 1e-6 is far below any clinically or statistically meaningful difference and keeps a
#: 1,000-patient answer small.
ANSWER_DECIMALS = 6


class ModelUnavailable(NbriskError):
    """No model could be loaded (missing registry entry, unreachable tracking server, unreadable artifact)."""

    exit_code = 3


@dataclass(frozen=True)
class ServedModel:
    """Registry identity of the served model: what every answer names."""

    name: str
    version: str | None
    alias: str | None
    uri: str
    trained_at: str | None
    synthetic_training_data: bool
    #: how the served 95% intervals were computed (method, refits, measured coverage), or that none is served
    intervals: str = ""
    #: the MLflow run that registered the served version (None for an in-memory model)
    run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "trained_at": self.trained_at,
            "synthetic_training_data": self.synthetic_training_data,
            "label": SYNTHETIC_LABEL if self.synthetic_training_data else None,
            "intervals": self.intervals,
            "run_id": self.run_id,
        }


class Predictor:
    """Validate records and predict risk curves with one fitted :class:`RiskModel`.

    Parameters
    ----------
    risk_model : a fitted ``RiskModel`` (feature pipeline + illness–death model + risk cut-offs + summary).
    served : its registry identity (name, version, alias, ...).
    fast : validate and predict without DataFrames (the default; see the module docstring). ``False`` takes the
        DataFrame path (``validate_records`` on :func:`raw_frame`), which gives the same answers and errors.
    """

    def __init__(self, risk_model: Any, served: ServedModel, *, fast: bool = True):
        self.risk_model = risk_model
        self.served = served
        self.fast = fast

    @classmethod
    def from_uri(cls, uri: str | None = None) -> Predictor:
        """Load the RiskModel behind an MLflow model URI (default: settings' ``models:/nbrisk@champion``).

        Uses :func:`nbrisk.models.pyfunc.load_risk_model` (downloads and unpickles the artifact) and
        resolves an alias to its version so that answers name the exact version served. Raises
        :class:`ModelUnavailable` with a one-line reason when the registry has no such model or cannot be reached.
        """
        from nbrisk.settings import get_settings

        uri = uri or get_settings().model_uri
        try:
            from nbrisk.models.pyfunc import load_risk_model, read_pin, resolve_model_version

            # load first: it points MLflow at the configured tracking/registry URIs; then pin the version, and load
            # that exact version (a cache hit unless the alias moved in between).
            load_risk_model(uri)
            resolved, version = resolve_model_version(uri)
            risk_model = load_risk_model(resolved)
        except NbriskError as exc:
            raise ModelUnavailable(str(exc)) from None
        except Exception as exc:  # registry down, corrupt artifact, ...: one line, never the stack of a crash loop
            raise ModelUnavailable(f"cannot load model {uri}: {type(exc).__name__}: {first_line(exc)}") from None
        from nbrisk.training.tracking import parse_models_uri

        ref = parse_models_uri(uri)
        name, alias = (ref.name, ref.alias) if ref is not None else (uri, None)
        pin = read_pin(uri)
        run_id = None
        if pin is not None:  # a model folder pinned inside a Bento: name it by its registered version
            name, alias, run_id = pin["name"], None, pin.get("run_id") or None
        elif version is not None:
            run_id = _training_run_id(name, version)
        served = _served_from(risk_model, name=name, version=version, alias=alias, uri=uri, run_id=run_id)
        return cls(risk_model, served)

    @classmethod
    def from_risk_model(
        cls,
        risk_model: Any,
        *,
        name: str = "nbrisk",
        version: str | None = None,
        alias: str | None = None,
        uri: str = "(in memory)",
        fast: bool = True,
    ) -> Predictor:
        """Wrap an in-memory RiskModel (tests, benchmarks, ``nbrisk predict``-like tooling)."""
        served = _served_from(risk_model, name=name, version=version, alias=alias, uri=uri)
        return cls(risk_model, served, fast=fast)

    # ------------------------------------------------------------------------------------------------------------
    @property
    def model_info(self) -> dict[str, Any]:
        """``{"name", "version", "alias", "trained_at", "synthetic_training_data", "label"}``."""
        return self.served.as_dict()

    def validate(
        self, patients: Sequence[Mapping[str, Any]], shape_problems: Sequence[ProblemDetail] = ()
    ) -> pd.DataFrame:
        """Validate raw patient objects with the record contract → typed records (a DataFrame, the contract's
        canonical types), or :class:`InvalidInput` listing every problem (patient index, field, rule) of every
        patient at once.

        ``shape_problems``: problems already found by :func:`nbrisk.serving.schemas.check_patients` (non-scalar
        values, ...), reported together with the contract's.
        """
        typed, problems = self._check(patients, shape_problems)
        if problems:
            raise _invalid(problems)
        return typed if isinstance(typed, pd.DataFrame) else pd.DataFrame(typed, copy=False)

    def _check(
        self, patients: Sequence[Mapping[str, Any]], shape_problems: Sequence[ProblemDetail] = (), unique_ids=True
    ) -> tuple[Records, list[ProblemDetail]]:
        """(typed records, every problem sorted by patient index); see :meth:`validate`.

        Typed records are a mapping of numpy columns on the fast path, a DataFrame otherwise. ``unique_ids=False``
        (the micro-batcher) leaves patient_id uniqueness to the caller, on the fast path only.
        """
        from nbrisk.features.record import fast_validate, validate_columns, validate_records

        if self.fast and not shape_problems and len(patients) <= FAST_PATH_MAX_PATIENTS:
            typed = fast_validate(patients, unique_ids=unique_ids)
            if typed is not None:
                return typed, []
        problems = list(shape_problems)
        try:
            if self.fast:
                typed, found = validate_columns(raw_columns(patients), len(patients), first_row=0)
            else:
                frame = raw_frame(patients)
                typed, found = validate_records(frame, require_outcomes=False, require_center=False, first_row=0)
                typed = typed.reset_index(drop=True)
        except Exception as exc:  # a validator bug must not become a 5xx for a client's body; log no values
            logger.error("record validator failed (%s at %s); request refused", type(exc).__name__, error_location(exc))
            raise InvalidInput(
                "patient records could not be validated",
                [*problems, ProblemDetail(None, None, "records could not be validated")],
            ) from None
        present = [set(p) for p in patients]
        # a field already refused by the shape check (an object, an overlong text...) was removed before the
        # contract's validator ran; do not report it a second time as "missing".
        seen = {(d.patient_index, d.field) for d in problems}
        # a patient that was not a JSON object at all was replaced by {}: one problem says so, not 30 "missing"
        not_objects = {d.patient_index for d in problems if d.field is None and d.patient_index is not None}
        for p in found:
            if p.row is not None:
                if (int(p.row), p.field) not in seen and int(p.row) not in not_objects:
                    problems.append(ProblemDetail(int(p.row), p.field, p.rule))
                continue
            # a whole-column problem (unknown or missing field): name every patient concerned
            idx: list[int | None]
            if p.rule.startswith("required field missing"):
                idx = [i for i, keys in enumerate(present) if p.field not in keys]
            else:
                idx = [i for i, keys in enumerate(present) if p.field in keys]
            problems.extend(
                ProblemDetail(i, p.field, p.rule)
                for i in idx or [None]
                if (i, p.field) not in seen and i not in not_objects
            )
        problems.sort(key=_row_order)
        return typed, problems

    def risk_many(self, requests: Sequence[RiskRequest]) -> list[dict[str, Any] | RequestError]:
        """Answer several ``/v1/risk`` requests with ONE validation and one prediction per distinct horizon set.

        What the service's micro-batcher calls when single-patient requests arrive concurrently: the fixed cost of
        the record validator and of the model (pandas frames, per-column work) is paid once per batch instead of
        once per request, so throughput grows with concurrency. Each answer (or :class:`RequestError`) is what
        :meth:`risk` would give for that request alone — with one difference kept deliberately small: patient_id
        uniqueness is a per-request rule, so the validator's duplicate check (which sees the whole batch) is
        replaced by a per-request one.
        """
        if len(requests) == 1:
            r = requests[0]
            try:
                return [self.risk(r.patients, r.horizons_months, r.problems)]
            except RequestError as exc:
                return [exc]
        offsets = np.cumsum([0, *(len(r.patients) for r in requests)])
        patients = [p for r in requests for p in r.patients]
        shape = [
            ProblemDetail(None if d.patient_index is None else d.patient_index + int(offsets[j]), d.field, d.message)
            for j, r in enumerate(requests)
            for d in r.problems
        ]
        try:
            typed, problems = self._check(patients, shape, unique_ids=False)
        except RequestError:
            return self._one_by_one(requests)
        at = [d.patient_index for d in problems if d.patient_index is not None]
        if len(at) < len(problems):
            return self._one_by_one(requests)  # a whole-batch problem cannot be attributed: answer each alone
        owner = np.searchsorted(offsets, at, side="right") - 1
        per_request: list[list[ProblemDetail]] = [[] for _ in requests]
        for d, row, j in zip(problems, at, owner, strict=True):
            if d.field == "patient_id" and d.message.startswith("duplicate patient_id"):
                continue  # across requests ids may repeat; within a request they are checked below
            per_request[j].append(ProblemDetail(row - int(offsets[j]), d.field, d.message))
        for j, r in enumerate(requests):
            per_request[j] += _duplicate_ids(r.patients)
        answers: list[dict[str, Any] | RequestError | None] = [None] * len(requests)
        groups: dict[tuple[float, ...], list[int]] = {}
        for j, r in enumerate(requests):
            if per_request[j]:
                answers[j] = _invalid(sorted(per_request[j], key=_row_order))
            else:
                groups.setdefault(tuple(r.horizons_months), []).append(j)
        for horizons, members in groups.items():
            rows = np.concatenate([np.arange(offsets[j], offsets[j + 1]) for j in members])
            try:
                results = self.predict_records(_take(typed, rows), horizons)
            except RequestError:  # e.g. an unseen category in one request: score the others alone
                for j in members:
                    try:
                        res = self.predict_records(_take(typed, np.arange(offsets[j], offsets[j + 1])), horizons)
                        answers[j] = {"model": self.model_info, "results": res}
                    except RequestError as exc:
                        answers[j] = exc
                continue
            start = 0
            for j in members:
                n = int(offsets[j + 1] - offsets[j])
                answers[j] = {"model": self.model_info, "results": results[start : start + n]}
                start += n
        return [a if a is not None else RequestError("internal batching error") for a in answers]

    def _one_by_one(self, requests: Sequence[RiskRequest]) -> list[dict[str, Any] | RequestError]:
        out: list[dict[str, Any] | RequestError] = []
        for r in requests:
            try:
                out.append(self.risk(r.patients, r.horizons_months, r.problems))
            except RequestError as exc:
                out.append(exc)
        return out

    def predict_records(self, typed: Records, horizons_months: Sequence[float]) -> list[dict[str, Any]]:
        """Typed (validated) records — a DataFrame or a mapping of typed numpy columns — → per-patient results of
        ``/v1/risk`` (``results`` list)."""
        rm = self.risk_model
        asked = [float(h) for h in horizons_months]
        try:
            # the 24-month horizon is always predicted: risk groups come from the 2-year EFS
            curves: RiskCurves = rm.predict(typed, sorted({*asked, RISK_GROUP_HORIZON_MONTHS}))
        except NbriskError as exc:
            raise _model_input_error(exc) from None
        # columns of the requested horizons, in the order asked, whatever order the model returns its grid in (the
        # model's grid holds the asked values themselves; isclose only for a model that rounds them)
        grid = np.asarray(curves.horizons_months, dtype=float)
        where = {float(g): i for i, g in enumerate(grid.tolist())}
        wanted = [*asked, RISK_GROUP_HORIZON_MONTHS]
        if not all(h in where for h in wanted):
            where = {h: int(np.flatnonzero(np.isclose(grid, h))[0]) for h in wanted}
        cols = [where[h] for h in asked]
        col_2y = where[RISK_GROUP_HORIZON_MONTHS]
        groups = np.asarray(rm.risk_groups_from_efs(curves.efs.estimate[:, col_2y]), dtype=object)
        warnings = rm.input_warnings(typed)
        intervals = curves.relapse.lower is not None
        # every band's estimate (and bounds) at the asked horizons in one array: one rounding, one list conversion
        names = list(curves.bands())
        parts = [
            np.asarray(part)[:, cols]
            for band in curves.bands().values()
            for part in ((band.estimate, band.lower, band.upper) if intervals else (band.estimate,))
        ]
        per_band = 3 if intervals else 1
        values = _answer(np.stack(parts))  # (bands × parts, n, k) → nested lists
        bands: dict[str, tuple[list, list | None, list | None]] = {
            name: (
                values[per_band * b],
                values[per_band * b + 1] if intervals else None,
                values[per_band * b + 2] if intervals else None,
            )
            for b, name in enumerate(names)
        }
        hz = [_plain_number(h) for h in asked]
        ids = [str(pid) for pid in typed["patient_id"]]
        note = [] if intervals else ["this model gives no prediction interval (lower/upper are null)"]
        results = []
        for i, pid in enumerate(ids):
            r: dict[str, Any] = {"patient_id": pid, "horizons_months": hz}
            for name, (est, lo, up) in bands.items():
                r[name] = {
                    "estimate": est[i],
                    "lower": lo[i] if lo is not None else None,
                    "upper": up[i] if up is not None else None,
                }
            r["risk_group"] = str(groups[i])
            r["warnings"] = [*warnings[i], *note]
            results.append(r)
        return results

    def risk(
        self,
        patients: Sequence[Mapping[str, Any]],
        horizons_months: Sequence[float],
        shape_problems: Sequence[ProblemDetail] = (),
    ) -> dict[str, Any]:
        """The whole ``POST /v1/risk`` answer for raw patient objects (validation included)."""
        typed, problems = self._check(patients, shape_problems)
        if problems:
            raise _invalid(problems)
        return {"model": self.model_info, "results": self.predict_records(typed, horizons_months)}

    def warm_up(self) -> None:
        """Answer the contract's example patient once on each path (imports, caches and lazily built tables
        are then in place before :func:`freeze_heap` and before the first client)."""
        from nbrisk.features.record import example_record

        rec = example_record(with_outcomes=False)
        for patients in ([rec], [dict(rec, patient_id=f"W{i}") for i in range(FAST_PATH_MAX_PATIENTS + 1)]):
            try:
                self.risk(patients, (12, 24, 36, 60))
            except RequestError:  # a model that cannot score the example still serves others
                pass
            except Exception as exc:  # best effort: a failure here shows again (as a 500) on a real request
                logger.warning("warm-up prediction failed (%s at %s)", type(exc).__name__, error_location(exc))
                return

    def report(
        self, patient: Mapping[str, Any], fmt: str = "pdf", shape_problems: Sequence[ProblemDetail] = ()
    ) -> bytes:
        """The tumour-board report (PDF or HTML bytes) for one patient, rendered by
        :func:`nbrisk.reports.render.render_patient_report` from the same validated record and model."""
        from nbrisk.reports.render import render_patient_report  # imported on first use: the report stack is large

        typed = self.validate([patient], shape_problems)
        try:
            return render_patient_report(self.risk_model, typed.iloc[[0]], fmt=fmt, model_info=self.model_info)
        except RequestError:
            raise
        except NbriskError as exc:
            raise _model_input_error(exc) from None

    def model_card(self) -> dict[str, Any]:
        """``GET /v1/model``: the served model's card (identity, intended use, training data summary, validation
        metrics with CIs, model specification) built from the RiskModel's ``training_summary`` — aggregates only,
        no patient-level value."""
        rm = self.risk_model
        s = training_summary_of(rm)
        training = {
            k: s.get(k)
            for k in (
                "n",
                "events",
                "synthetic",
                "data_fingerprint",
                "median_followup_days",
                "numeric_ranges",
                "category_counts",
                "missing_counts",
                "predicted_2y_distribution",
            )
            if k in s
        }
        spec = {
            k: s.get(k)
            for k in (
                "model_name",
                "family",
                "inputs",
                "params",
                "interval_method",
                "n_interval_bootstrap",
                "interval_statement",
                "feature_names",
            )
            if k in s
        }
        spec["risk_cutoffs_efs_2y"] = list(getattr(rm, "risk_cutoffs", ()) or ())
        spec["risk_group_horizon_months"] = RISK_GROUP_HORIZON_MONTHS
        spec["contributions_available"] = bool(getattr(rm, "contributions_available", False))
        card = {
            "model": self.model_info,
            "label": SYNTHETIC_LABEL if self.served.synthetic_training_data else None,
            "intended_use": INTENDED_USE,
            "training_data": training,
            "validation_metrics": [dataclasses.asdict(m) for m in s.validation_metrics],
            "specification": spec,
            "outputs": {
                "relapse": "cumulative incidence of relapse/progression (competing risk with TRM)",
                "trm": "cumulative incidence of transplant-related mortality (death without prior relapse)",
                "efs": "event-free survival = 1 - relapse - trm",
                "os": "overall survival from the illness-death model (os >= efs, 1 - os >= trm)",
                "intervals": "95% pointwise",
            },
        }
        return jsonable(card)


def raw_frame(patients: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Raw patient objects → one object-dtype DataFrame (values exactly as sent; missing keys → None).

    Outcome fields are dropped: they are training data and prediction ignores them, as ``nbrisk predict`` does.
    Built from one 2-D object array (a single pandas block): about ten times faster for a one-patient request than
    a Series per column, and this runs on every request.
    """
    from nbrisk.features.record import OUTCOME_FIELDS

    outcome = set(OUTCOME_FIELDS)
    keys: dict[str, None] = {}
    for p in patients:
        for k in p:
            if k not in outcome:
                keys.setdefault(k, None)
    cols = list(keys)
    values = np.empty((len(patients), len(cols)), dtype=object)
    for i, p in enumerate(patients):
        values[i] = [p.get(k) for k in cols]
    return pd.DataFrame(values, columns=pd.Index(cols, dtype=object), dtype=object)


def raw_columns(patients: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Raw patient objects → one ``object`` array per field sent (values exactly as sent; a missing key → None),
    in first-seen order: :func:`raw_frame`'s columns without the frame. Outcome fields are dropped as there."""
    from nbrisk.features.record import OUTCOME_FIELDS

    outcome = set(OUTCOME_FIELDS)
    n = len(patients)
    keys: dict[str, None] = {}
    for p in patients:
        for k in p:
            if k not in outcome:
                keys.setdefault(k, None)
    cols = {}
    for k in keys:
        col = np.empty(n, dtype=object)
        for i, p in enumerate(patients):  # element by element: a list value stays one object
            col[i] = p.get(k)
        cols[k] = col
    return cols


#: Typed records: a DataFrame (``validate_records``) or a mapping of typed numpy columns (``validate_columns``).
Records: TypeAlias = pd.DataFrame | Mapping[str, np.ndarray]
#: Requests with at most this many patients try :func:`nbrisk.features.record.fast_validate` first (plain Python per
#: value: faster than numpy's per-call overhead for a few records, slower for many).
FAST_PATH_MAX_PATIENTS = 32


def _take(typed: Records, rows: np.ndarray) -> Records:
    """Records at positions ``rows`` (renumbered from 0)."""
    if isinstance(typed, pd.DataFrame):
        return typed.iloc[rows].reset_index(drop=True)
    return {k: v[rows] for k, v in typed.items()}


def freeze_heap() -> None:
    """Move every object alive now into the collector's permanent generation (``gc.freeze``).

    Call once the model is loaded and warmed up, and again after a model swap (the old model is then unreachable:
    ``gc.unfreeze`` and a full collection free it first). Generation-2 collections then traverse only the objects
    requests allocate instead of the ~300,000 of the model and its libraries, which made one request in ~1,000 wait
    240–500 ms (Python docs, ``gc.freeze``: "useful ... to avoid ... collections of long-lived objects").
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _training_run_id(name: str, version: str) -> str | None:
    """The MLflow run that registered ``name``/``version`` (provenance of answers and reports); None if unknown."""
    from nbrisk.training import tracking

    try:
        return tracking.version_run_id(name, version)
    except NbriskError:
        return None


def _served_from(
    risk_model: Any, *, name: str, version: str | None, alias: str | None, uri: str, run_id: str | None = None
) -> ServedModel:
    s = training_summary_of(risk_model)
    synthetic = s.synthetic
    return ServedModel(
        name=name,
        version=version,
        alias=alias,
        uri=uri,
        trained_at=s.get("trained_at"),
        synthetic_training_data=synthetic,
        intervals=_interval_words(risk_model, s),
        run_id=run_id,
    )


def _interval_words(risk_model: Any, summary: Any) -> str:
    """The model's own statement about its intervals; models registered before it existed get a plain one."""
    if summary.get("interval_statement"):
        return str(summary.get("interval_statement"))
    if not getattr(risk_model, "supports_intervals", False):
        return "no interval: this model gives none"
    n = summary.get("n_interval_bootstrap") or 0
    return f"95% percentile bootstrap, {n} refits; coverage of the true CIF not measured for this model"


def _invalid(problems: list[ProblemDetail]) -> InvalidInput:
    n_bad = len({d.patient_index for d in problems})
    return InvalidInput(f"{len(problems)} problem(s) in {n_bad} patient(s)", problems)


def _duplicate_ids(patients: Sequence[Mapping[str, Any]]) -> list[ProblemDetail]:
    """patient_id must be unique within one request (the contract's rule, applied per request in a batch; every
    occurrence is reported, as the contract's validator does)."""
    positions: dict[str, list[int]] = {}
    for i, p in enumerate(patients):
        pid = p.get("patient_id")
        if isinstance(pid, str) and pid.strip():
            positions.setdefault(pid.strip(), []).append(i)
    out = []
    for pos in positions.values():
        if len(pos) > 1:
            out += [
                ProblemDetail(
                    i, "patient_id", "duplicate patient_id" + (f" (first in row {pos[0]})" if i != pos[0] else "")
                )
                for i in pos
            ]
    return out


def _model_input_error(exc: NbriskError) -> RequestError:
    """Errors the model raises for an input it cannot score (an unseen category) → 422 naming patient and field."""
    unseen = getattr(exc, "unseen", None)
    if unseen:
        detail = [
            ProblemDetail(int(pos), str(f), "category not seen in the training data; the model cannot score it")
            for f, _value, positions in unseen
            for pos in positions
        ]
        return InvalidInput("input the model cannot score", detail)
    return InvalidInput(
        "input the model cannot score", [ProblemDetail(None, getattr(exc, "field", None), first_line(exc))]
    )


def _answer(arr: np.ndarray) -> list:
    """Float array (any shape) → nested lists rounded to :data:`ANSWER_DECIMALS`; a non-finite value (a model bug)
    becomes null rather than invalid JSON."""
    arr = np.round(np.asarray(arr, dtype=float), ANSWER_DECIMALS)
    if np.all(np.isfinite(arr)):
        return arr.tolist()
    logger.error("model returned non-finite values; answered as null")
    out = arr.astype(object)
    out[~np.isfinite(arr)] = None
    return out.tolist()


def _row_order(d: ProblemDetail) -> int:
    """Sort key of problems: whole-request problems (no patient) first, then by patient."""
    return -1 if d.patient_index is None else d.patient_index


def _plain_number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def error_location(exc: BaseException) -> str:
    """``module:line`` of the innermost frame of ``exc`` (for logs that must not carry exception messages)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{tb.tb_frame.f_globals.get('__name__', '?')}:{tb.tb_lineno}"


def jsonable(obj: Any) -> Any:
    """Numpy scalars/arrays, tuples and non-finite floats → plain JSON values (NaN/inf → None)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return str(obj)
