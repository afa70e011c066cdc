"""Registering a run's model and naming its champion; no Spark here (saving and loading a Spark
model is synapse_ml_track/spark/models.py).

The model is saved locally and uploaded as plain run artifacts, then registered from its
`runs:/` source. That path uses only endpoints every backend serves: MLflow 3's logged-model
endpoints are not served by Azure Machine Learning.

What is read back is only what AML documents (how-to-manage-models-mlflow.md, "Support matrix"):
a version's details by `get_model_version` (its `run_id`, its tags) and edits of its tags. Neither
the tags in `search_model_versions` results nor the form in which the registry keeps the `source`
is documented, so the run path of a version's files is written as a version tag at registration.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from synapse_ml_track.errors import TrackingError, first_line
from synapse_ml_track.tracking.retries import create_once
from synapse_ml_track.tracking.runs import all_pages
from synapse_ml_track.vocabulary import (
    ARTIFACT_PATH_TAG,
    CHAMPION_STANDING_TAG,
    CHAMPION_TAG,
    MODEL_PATH_TAG,
    higher_is_better,
)

log = logging.getLogger(__name__)

MODEL_ARTIFACT_PATH = "model"


def free_model_path(existing: set[str]) -> str:
    """The first of model, model-2, model-3... under which the run holds no file yet."""
    taken = {path.split("/", 1)[0] for path in existing}
    candidates = (MODEL_ARTIFACT_PATH if n == 1 else f"{MODEL_ARTIFACT_PATH}-{n}" for n in range(1, len(taken) + 2))
    return next(path for path in candidates if path not in taken)


def model_path_tags(path: str) -> dict[str, str]:
    return {} if path == MODEL_ARTIFACT_PATH else {MODEL_PATH_TAG: path}


def model_path_of(run: Run) -> str:
    path: str = run.data.tags.get(MODEL_PATH_TAG, MODEL_ARTIFACT_PATH)
    return path


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str


def model_if_exists(client: MlflowClient, name: str) -> RegisteredModel | None:
    """The registered model, or None. A get by name is what AML's registry serves: MLflow 3's
    search_registered_models appends a `!=` tag filter that AML refuses (Azure/azure-sdk-for-python#42155)."""
    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def all_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of a model, page by page (AML, like MLflow, returns a page with a token)."""
    try:
        return all_pages(lambda token: client.search_model_versions(f"name='{name}'", page_token=token))
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise


def register(
    client: MlflowClient,
    name: str,
    run_id: str,
    *,
    artifact_path: str = MODEL_ARTIFACT_PATH,
    resumed: bool = False,
    create_attempts: int = 1,
    wait_seconds: float = 300,
) -> RegisteredVersion:
    """Create the registered model if needed and a version from the run's model artifacts, tagged
    with their path in the run.

    A version that does not become READY, or whose path cannot be tagged, is deleted, so a failure
    leaves nothing half-registered. A resumed run reuses the version it registered before it was
    interrupted, or deletes it when it was interrupted before the version was tagged.
    """
    if resumed:
        existing = version_for_run(client, name, run_id)
        if existing is not None:
            try:
                model_source(client.get_model_version(name, existing.version))
                return existing
            except TrackingError:
                log.warning("deleting version %s of %s: its registration was interrupted", existing.version, name)
                client.delete_model_version(name, existing.version)
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = create_once(
        lambda: client.create_model_version(name, f"runs:/{run_id}/{artifact_path}", run_id=run_id),
        lambda: next((v for v in all_versions(client, name) if v.run_id == run_id), None),
        attempts=create_attempts,
    )
    try:
        _wait_until_ready(client, name, version.version, version.status, wait_seconds)
        client.set_model_version_tag(name, version.version, ARTIFACT_PATH_TAG, artifact_path)
    except BaseException:
        _delete_quietly(client, name, version.version)
        raise
    return RegisteredVersion(name, str(version.version))


def _wait_until_ready(client: MlflowClient, name: str, version: str, status: str, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while status == "PENDING_REGISTRATION":
        if time.monotonic() > deadline:
            raise MlflowException(f"model {name} version {version} was still pending after {wait_seconds:.0f} s")
        time.sleep(1)
        status = client.get_model_version(name, version).status
    if status != "READY":
        raise MlflowException(f"model {name} version {version} ended as {status}")


def _delete_quietly(client: MlflowClient, name: str, version: str) -> None:
    try:
        client.delete_model_version(name, version)
    except Exception as exc:  # noqa: BLE001 - reporting the original failure matters more
        log.warning("could not delete unfinished model version %s/%s: %s", name, version, first_line(exc))


def version_for_run(client: MlflowClient, name: str, run_id: str) -> RegisteredVersion | None:
    """A version already registered from this run (a resumed run must not register twice)."""
    for version in all_versions(client, name):
        if version.run_id == run_id and version.status == "READY":
            return RegisteredVersion(name, str(version.version))
    return None


def model_source(version: ModelVersion) -> tuple[str, str]:
    """(run id, artifact path) of a version, from `get_model_version`: its run_id field and the path
    tagged at registration, or, for a version registered without the tag, a `runs:/<run id>/<path>`
    source. Anything else is refused: guessing "model" would load an earlier attempt's files."""
    tags = version.tags or {}
    if version.run_id and tags.get(ARTIFACT_PATH_TAG):
        return version.run_id, tags[ARTIFACT_PATH_TAG]
    match = re.match(r"^runs:/([^/]+)/(.+)$", version.source or "")
    if match and version.run_id in (None, "", match.group(1)):
        return match.group(1), match.group(2)
    raise TrackingError(
        f"model '{version.name}' version {version.version} does not say where its files are: no "
        f"{ARTIFACT_PATH_TAG} tag and source {version.source!r} (run {version.run_id or 'unknown'}); "
        f"score it by its run's URI, runs:/RUN_ID/PATH, or register it again from its run"
    )


def champion_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The champion's version: by alias where the registry has aliases, else by the champion tag."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if not _aliases_unsupported(exc):
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None  # no such model yet, or no champion yet
            raise
    return next(iter(_tagged_champions(client, name, alias)), None)


def _tagged_champions(client: MlflowClient, name: str, alias: str) -> Iterator[str]:
    """The versions carrying the champion tag, newest first. Tags are read version by version with
    get_model_version: AML documents no tags in search results (see the module docstring)."""
    numbers = sorted((int(v.version) for v in all_versions(client, name)), reverse=True)
    for number in numbers:
        if client.get_model_version(name, str(number)).tags.get(CHAMPION_TAG) == alias:
            yield str(number)


@dataclass(frozen=True)
class Standing:
    """What a promotion is judged on: the gate's metric on this run's test split, and the champion the
    gate compared it with (beaten; None when there was none)."""

    metric: str
    value: float
    beaten: str | None = None
    contested: bool = True  # False: promoted without comparing (gate.compare_to_champion off)

    def tag(self) -> str:
        return f"{self.metric}={self.value!r}"

    def loses_to(self, recorded: str | None, ours: str, theirs: str) -> bool:
        """Whether a concurrent candidate's recorded standing is better; on a tie the older version wins."""
        name, _, text = (recorded or "").partition("=")
        try:
            value = float(text)
        except ValueError:
            return False  # a version marked before standings were recorded is no concurrent candidate
        if name != self.metric:
            return False
        if value == self.value:
            return int(theirs) < int(ours)
        return value > self.value if higher_is_better(self.metric) else value < self.value


def promote(client: MlflowClient, version: RegisteredVersion, alias: str, standing: Standing) -> bool:
    """Make this version the champion unless a better one is being promoted at the same moment.

    MLflow's registry has no compare-and-set, so two jobs that passed the gate against the same
    champion settle it through tags: each marks its version a candidate (CHAMPION_TAG, with its
    standing), then reads every candidate. A candidate beaten by a better concurrent one drops its own
    mark; the best clears the others' and takes the alias. Whoever reads last has seen both marks, so
    the marks settle on the better version; the alias follows, since a job whose alias write lands
    after it lost puts the alias back on the winner (see _settle_alias). Where aliases are not
    served (Azure ML), the one remaining mark is the champion. Returns whether this version won.

    A promotion that fails part way is undone as far as the server lets (_withdraw): the champion
    must not be left on a version whose job failed.
    """
    try:
        return _promote(client, version, alias, standing)
    except BaseException:
        _withdraw(client, version, alias, standing.beaten)
        raise


def _promote(client: MlflowClient, version: RegisteredVersion, alias: str, standing: Standing) -> bool:
    client.set_model_version_tag(version.name, version.version, CHAMPION_STANDING_TAG, standing.tag())
    client.set_model_version_tag(version.name, version.version, CHAMPION_TAG, alias)
    marked = _candidates(client, version.name, alias)
    rivals = {
        number: tags
        for number, tags in marked.items()
        if standing.contested and number not in (version.version, standing.beaten)
    }
    if any(standing.loses_to(tags.get(CHAMPION_STANDING_TAG), version.version, n) for n, tags in rivals.items()):
        _delete_tag(client, version.name, version.version, CHAMPION_TAG)
        log.warning("version %s not promoted: a better version was promoted at the same time", version.version)
        return False
    for other in marked:
        if other != version.version:
            _delete_tag(client, version.name, other, CHAMPION_TAG)
    try:
        client.set_registered_model_alias(version.name, alias, version.version)
    except MlflowException as exc:
        if not _aliases_unsupported(exc):
            raise
        log.info("the registry does not serve aliases (Azure ML); the %s tag marks the champion", CHAMPION_TAG)
        return True
    return _settle_alias(client, version, alias)


def _withdraw(client: MlflowClient, version: RegisteredVersion, alias: str, previous: str | None) -> None:
    """This version's champion mark off, then the mark and the alias back on the champion it beat
    (`previous`; without one, the alias is removed if it names this version). Each step is tried
    once, whatever the others did: the job's own failure is what it reports."""
    name = version.name

    def alias_back() -> None:
        try:
            holder = str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return  # no alias, or a registry without aliases (Azure ML): the marks are the champion
        if holder != version.version:
            return
        if previous is None:
            client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, previous)

    def mark_previous() -> None:
        if previous is not None:
            client.set_model_version_tag(name, previous, CHAMPION_TAG, alias)

    steps: list[tuple[str, Callable[[], None]]] = [
        ("remove the champion mark of", lambda: _delete_tag(client, name, version.version, CHAMPION_TAG)),
        ("mark the champion it beat instead of", mark_previous),
        ("move the alias back from", alias_back),
    ]
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001
            log.warning("promotion of %s version %s undone in part: could not %s it: %s",
                        name, version.version, what, first_line(exc))  # fmt: skip


def _delete_tag(client: MlflowClient, name: str, number: str, key: str) -> None:
    """Delete a version's tag; one already gone (a resent delete whose first answer was lost) is done."""
    try:
        client.delete_model_version_tag(name, number, key)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise


def _settle_alias(client: MlflowClient, version: RegisteredVersion, alias: str, rounds: int = 3) -> bool:
    """After our alias write: if a better concurrent version has since removed our mark, the alias
    goes back to the version still marked (our write may have landed after the winner's)."""
    for _ in range(rounds):
        marked = _candidates(client, version.name, alias)
        if version.version in marked:
            return True
        if not marked:
            return False
        winner = max(marked, key=int)
        if str(client.get_model_version_by_alias(version.name, alias).version) == winner:
            return False
        client.set_registered_model_alias(version.name, alias, winner)
    return False


def _candidates(client: MlflowClient, name: str, alias: str) -> dict[str, dict[str, str]]:
    """The versions marked with the champion tag, with their tags (read one by one: see _tagged_champions)."""
    found = {}
    for number in sorted((int(v.version) for v in all_versions(client, name)), reverse=True):
        tags = client.get_model_version(name, str(number)).tags
        if tags.get(CHAMPION_TAG) == alias:
            found[str(number)] = tags
    return found


def _aliases_unsupported(exc: MlflowException) -> bool:
    # A 404 without MLflow's JSON body becomes ENDPOINT_NOT_FOUND (mlflow/utils/rest_utils.py,
    # verify_rest_response); a missing alias is RESOURCE_DOES_NOT_EXIST instead.
    return exc.error_code in ("ENDPOINT_NOT_FOUND", "NOT_IMPLEMENTED") or exc.get_http_status_code() in (405, 501)
