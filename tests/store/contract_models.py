"""The ``Store`` contract for models, aliases and endpoints (see :mod:`runyard.store.base`).

Imported by a test module that provides a ``store`` fixture (a fresh, empty store)::

    from .contract_models import *
"""

from __future__ import annotations

import math
import threading

import pytest

from runyard.errors import (
    EndpointNotFound,
    InvalidTransition,
    ModelInUse,
    ModelNotFound,
    UserError,
)
from runyard.records import EndpointStatus, ModelFile, ModelVersion, TrafficRoute
from runyard.store.base import Store

FILE = ModelFile("model.onnx", 123, "ab" * 32)


def ready(store: Store, name: str = "digits", **kw: object) -> ModelVersion:
    """Register a version with one file, as the registry does."""
    pending = store.create_model_version(name, **kw)  # type: ignore[arg-type]
    return store.finish_model_version(name, pending.version, [FILE])


def test_versions_are_numbered_per_name(store: Store) -> None:
    assert [ready(store).version for _ in range(3)] == [1, 2, 3]
    assert ready(store, "other").version == 1
    assert [v.version for v in store.list_model_versions("digits")] == [3, 2, 1]
    assert [v.ref for v in store.list_model_versions()] == [
        "digits@3", "digits@2", "digits@1", "other@1",
    ]  # fmt: skip


def test_a_pending_version_is_invisible_until_finished(store: Store) -> None:
    ready(store)
    pending = store.create_model_version("digits")
    assert pending.version == 2
    assert store.get_model_version("digits").version == 1
    assert [v.version for v in store.list_model_versions("digits")] == [1]
    with pytest.raises(ModelNotFound, match="still being registered"):
        store.get_model_version("digits", 2)
    store.finish_model_version("digits", 2, [FILE])
    assert store.get_model_version("digits").version == 2
    with pytest.raises(UserError, match="already registered"):
        store.finish_model_version("digits", 2, [FILE])


def test_a_version_needs_files(store: Store) -> None:
    pending = store.create_model_version("digits")
    with pytest.raises(UserError, match="at least one file"):
        store.finish_model_version("digits", pending.version, [])


def test_fields_and_lineage_round_trip(store: Store) -> None:
    made = ready(
        store,
        framework="onnx",
        framework_version="1.17",
        description="first",
        tags={"stage": "dev"},
        properties={"opset": "18"},
        run_id="abc123",
        run_params={"lr": "0.1"},
        run_metrics={"acc": 0.97, "bad": math.nan, "big": math.inf, "small": -math.inf},
        source="run:abc123/outputs/model.onnx",
    )
    got = store.get_model_version("digits", 1)
    assert got == made
    assert got.files == (FILE,)
    assert (got.framework, got.framework_version, got.description) == ("onnx", "1.17", "first")
    assert got.tags == {"stage": "dev"} and got.properties == {"opset": "18"}
    assert got.run_id == "abc123" and got.run_params == {"lr": "0.1"}
    assert got.run_metrics["acc"] == 0.97 and math.isnan(got.run_metrics["bad"])
    assert got.run_metrics["big"] == math.inf and got.run_metrics["small"] == -math.inf
    assert got.source == "run:abc123/outputs/model.onnx"


def test_tags_and_description_change_files_do_not(store: Store) -> None:
    ready(store, tags={"a": "1", "b": "2"}, description="old")
    got = store.update_model_version(
        "digits", 1, set_tags={"c": "3", "a": "9"}, delete_tags=["b"], description="new"
    )
    assert got.tags == {"a": "9", "c": "3"} and got.description == "new"
    assert store.update_model_version("digits", 1).description == "new"
    assert store.get_model_version("digits", 1).files == (FILE,)


def test_aliases_point_at_one_version_and_move(store: Store) -> None:
    for _ in range(3):
        ready(store)
    store.set_model_alias("digits", "production", 1)
    store.set_model_alias("digits", "staging", 1)
    assert store.get_model_version("digits", alias="production").version == 1
    assert store.get_model_version("digits", 1).aliases == ("production", "staging")
    store.set_model_alias("digits", "production", 3)
    assert store.get_model_version("digits", alias="production").version == 3
    assert store.get_model_version("digits", 1).aliases == ("staging",)
    store.set_model_alias("digits", "staging", None)
    with pytest.raises(ModelNotFound, match=r"no alias 'staging'.*production"):
        store.get_model_version("digits", alias="staging")
    with pytest.raises(ModelNotFound):
        store.set_model_alias("digits", "staging", None)


def test_aliases_need_an_existing_version_and_a_good_name(store: Store) -> None:
    ready(store)
    with pytest.raises(ModelNotFound, match="no version 7"):
        store.set_model_alias("digits", "prod", 7)
    for bad in ("latest", "3", "a/b", "", "../x"):
        with pytest.raises(UserError):
            store.set_model_alias("digits", bad, 1)


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "-x", "", "a b", "x" * 129, "a..b"])
def test_names_with_path_tricks_are_refused(store: Store, name: str) -> None:
    with pytest.raises(UserError, match="invalid model name"):
        store.create_model_version(name)
    assert store.list_model_versions() == []


def test_missing_models_are_reported(store: Store) -> None:
    with pytest.raises(ModelNotFound, match="model 'nope' not found"):
        store.get_model_version("nope")
    ready(store)
    with pytest.raises(ModelNotFound, match="has no version 5"):
        store.get_model_version("digits", 5)


def test_deleted_versions_are_gone_and_their_numbers_not_reused(store: Store) -> None:
    ready(store)
    ready(store)
    store.set_model_alias("digits", "production", 2)
    deleted = store.delete_model_version("digits", 2)
    assert deleted.version == 2 and deleted.aliases == ("production",)
    with pytest.raises(ModelNotFound, match="was deleted"):
        store.get_model_version("digits", 2)
    with pytest.raises(ModelNotFound):
        store.get_model_version("digits", alias="production")
    assert store.get_model_version("digits").version == 1
    assert ready(store).version == 3
    with pytest.raises(ModelNotFound):
        store.delete_model_version("digits", 2)


def test_a_pending_version_can_be_discarded(store: Store) -> None:
    pending = store.create_model_version("digits")
    store.delete_model_version("digits", pending.version)
    assert ready(store).version == 2


def test_concurrent_registrations_get_distinct_versions(store: Store) -> None:
    got: list[int] = []
    errors: list[BaseException] = []

    def register() -> None:
        try:
            for _ in range(5):
                got.append(ready(store).version)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(got) == list(range(1, 21))


# -- endpoints --------------------------------------------------------------------------------


def test_endpoints_are_recorded_starting(store: Store) -> None:
    ready(store)
    made = store.create_endpoint("web", [TrafficRoute("digits", 1, 100)], {"score": None})
    assert made.status is EndpointStatus.STARTING
    assert made.traffic == (TrafficRoute("digits", 1, 100),)
    assert made.config == {"score": None}
    assert store.get_endpoint("web") == made
    assert [e.name for e in store.list_endpoints()] == ["web"]
    with pytest.raises(UserError, match="already exists"):
        store.create_endpoint("web", [TrafficRoute("digits", 1, 1)], {})


def test_endpoint_traffic_is_checked(store: Store) -> None:
    ready(store)
    for traffic, message in [
        ([], "at least one"),
        ([TrafficRoute("digits", 2, 1)], "no such model version"),
        ([TrafficRoute("nope", 1, 1)], "no such model version"),
        ([TrafficRoute("digits", 1, 0)], "add up to 0"),
        ([TrafficRoute("digits", 1, -1)], ">= 0"),
        ([TrafficRoute("digits", 1, 1), TrafficRoute("digits", 1, 2)], "twice"),
    ]:
        with pytest.raises(UserError, match=message):
            store.create_endpoint("web", traffic, {})
    assert store.list_endpoints() == []
    with pytest.raises(UserError, match="invalid endpoint name"):
        store.create_endpoint("../web", [TrafficRoute("digits", 1, 1)], {})


def test_endpoint_updates(store: Store) -> None:
    ready(store)
    ready(store)
    store.create_endpoint("web", [TrafficRoute("digits", 1, 1)], {})
    up = store.update_endpoint(
        "web",
        {"status": EndpointStatus.RUNNING, "pid": 42, "port": 8080, "hostname": "h"},
        expected=[EndpointStatus.STARTING],
    )
    assert (up.status, up.pid, up.port, up.hostname) == (EndpointStatus.RUNNING, 42, 8080, "h")
    assert up.updated_at >= up.created_at
    with pytest.raises(InvalidTransition, match="is Running"):
        store.update_endpoint("web", {"status": "Failed"}, expected=[EndpointStatus.STARTING])
    split = [TrafficRoute("digits", 1, 90), TrafficRoute("digits", 2, 10)]
    assert store.update_endpoint("web", {"traffic": split}).traffic == tuple(split)
    with pytest.raises(UserError, match="no such model version"):
        store.update_endpoint("web", {"traffic": [TrafficRoute("digits", 3, 1)]})
    with pytest.raises(UserError, match="cannot change"):
        store.update_endpoint("web", {"name": "other"})
    with pytest.raises(EndpointNotFound):
        store.update_endpoint("nope", {"pid": 1})


def test_endpoints_are_deleted(store: Store) -> None:
    ready(store)
    store.create_endpoint("web", [TrafficRoute("digits", 1, 1)], {})
    store.delete_endpoint("web")
    with pytest.raises(EndpointNotFound):
        store.get_endpoint("web")
    with pytest.raises(EndpointNotFound):
        store.delete_endpoint("web")


def test_a_version_a_live_endpoint_serves_cannot_be_deleted(store: Store) -> None:
    ready(store)
    ready(store)
    store.create_endpoint("web", [TrafficRoute("digits", 1, 9), TrafficRoute("digits", 2, 1)], {})
    for status in (EndpointStatus.STARTING, EndpointStatus.RUNNING):
        store.update_endpoint("web", {"status": status})
        with pytest.raises(ModelInUse, match="served by endpoint web"):
            store.delete_model_version("digits", 2)
    assert store.get_model_version("digits", 2).version == 2
    store.update_endpoint("web", {"traffic": [TrafficRoute("digits", 1, 1)]})
    store.delete_model_version("digits", 2)
    store.update_endpoint("web", {"status": EndpointStatus.FAILED})
    store.delete_model_version("digits", 1)  # a failed endpoint serves nothing
