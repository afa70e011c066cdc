"""The job config's JSON Schema: generated from the config dataclasses, checked in for editors."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

from synapse_ml_track.config import CHOICES, build_config, job_schema
from synapse_ml_track.config_schema import SCHEMA_FILE, dataclass_schema, schema_text
from synapse_ml_track.vocabulary import INPUT_FORMATS, TASKS

from support import imported_names

DOCS = Path(__file__).resolve().parents[2] / "docs"
# The configuration reference, and the Key Vault settings of the AML page.
CONFIG_DOCS = (DOCS / "configuration.md").read_text(encoding="utf-8") + (DOCS / "aml.md").read_text(encoding="utf-8")


def test_the_schema_module_does_not_import_the_config():
    """config imports config_schema; the way back would make a circle (the schema file's writer is config's)."""
    assert "synapse_ml_track.config" not in imported_names(SCHEMA_FILE.with_name("config_schema.py"))


def test_the_checked_in_schema_is_the_generated_one():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(job_schema()), (
        "synapse_ml_track/job.schema.json is stale: regenerate it with `python -m synapse_ml_track.config`"
    )


def test_the_schema_is_a_valid_draft_7_schema():
    Draft7Validator.check_schema(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def test_the_schema_carries_vocabularies_defaults_and_comments():
    properties = job_schema()["properties"]
    data, model = properties["data"]["properties"], properties["model"]["properties"]
    assert model["task"]["enum"] == list(TASKS)
    assert data["format"]["enum"] == [*INPUT_FORMATS, None]
    assert data["nulls"] == {"type": "string", "default": "drop", "enum": ["drop", "reject"]}
    assert properties["tracking"]["properties"]["request_timeout"]["default"] == 30.0
    assert data["max_categories"]["description"] == "warn when a categorical feature has more distinct values"
    assert model["search"]["description"].startswith("A hyperparameter search: empty `params` means none.")
    assert properties["data"]["additionalProperties"] is False


def test_a_choice_for_a_key_that_does_not_exist_is_refused():
    @dataclass
    class Section:
        mode: str = "a"

    assert dataclass_schema(Section, {"mode": ("a", "b")})["properties"]["mode"]["enum"] == ["a", "b"]
    with pytest.raises(TypeError, match="choices or ranges name no config key: mdoe"):
        dataclass_schema(Section, {"mdoe": ("a", "b")})
    with pytest.raises(TypeError, match="choices or ranges name no config key: mdoe"):
        dataclass_schema(Section, ranges={"mdoe": {"minimum": 1}})


def test_the_published_schema_holds_the_ranges_an_editor_checks():
    """An editor given job.schema.json flags `folds: 1`; the ranges were only in validate() before."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    search = schema["properties"]["model"]["properties"]["search"]["properties"]
    tracking = schema["properties"]["tracking"]["properties"]
    assert search["folds"]["minimum"] == 2
    assert (tracking["max_retries"]["minimum"], tracking["max_retries"]["maximum"]) == (0, 10)
    editor = Draft7Validator(schema)
    assert [error.validator for error in editor.iter_errors({"model": {"search": {"folds": 1}}})] == ["minimum"]
    assert list(editor.iter_errors({"model": {"search": {"folds": 3}}})) == []


def test_choices_name_keys_of_the_job_config():
    for dotted in CHOICES:
        node = job_schema()
        for part in dotted.split("."):
            node = node["properties"][part]
        assert node["enum"][: len(CHOICES[dotted])] == list(CHOICES[dotted])


def yaml_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", markdown, flags=re.S | re.M)


def first_key(block: str) -> str:
    return next(line for line in block.splitlines() if not line.startswith("#")).split(":")[0]


@pytest.mark.parametrize("block", yaml_blocks(CONFIG_DOCS), ids=first_key)
def test_the_documented_config_examples_validate_against_the_schema(block, tmp_path):
    """What an editor pointed at job.schema.json checks, and what the job accepts."""
    tree = yaml.safe_load(block)
    errors = [error.message for error in Draft7Validator(json.loads(SCHEMA_FILE.read_text())).iter_errors(tree)]
    assert errors == []
    config_file = tmp_path / "job.yaml"
    config_file.write_text(block)
    build_config(config_path=str(config_file), environ={})


def test_the_configuration_page_tells_editors_where_the_schema_is():
    assert "# yaml-language-server: $schema=" in CONFIG_DOCS
    assert len(yaml_blocks(CONFIG_DOCS)) >= 3


def test_the_schema_refuses_what_the_job_refuses():
    """The published schema is strict: an editor flags the unknown key and the wrong type."""
    validator = Draft7Validator(json.loads(SCHEMA_FILE.read_text()))
    assert not validator.is_valid({"data": {"lable": "species"}})
    assert not validator.is_valid({"data": {"seed": "seven"}})
    assert not validator.is_valid({"model": {"task": "clustering"}})
