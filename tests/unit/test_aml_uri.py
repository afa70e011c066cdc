"""Azure ML tracking URIs: built offline from region and cloud, and parsed back into the workspace."""

import pytest

from synapse_ml_track.config import AzureConfig
from synapse_ml_track.errors import ConfigError
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.tracking import aml


@pytest.mark.parametrize(
    ("cloud", "authority", "region", "host"),
    [
        (None, None, "westeurope", "westeurope.api.azureml.ms"),
        ("AzureUSGovernment", None, "usgovvirginia", "usgovvirginia.api.ml.azure.us"),
        ("AzureChinaCloud", None, "chinaeast2", "chinaeast2.api.ml.azure.cn"),
        (None, "https://login.microsoftonline.us", "usgovarizona", "usgovarizona.api.ml.azure.us"),
        (None, "https://login.chinacloudapi.cn/", "chinanorth3", "chinanorth3.api.ml.azure.cn"),
    ],
)
def test_workspace_host_follows_the_cloud(cloud, authority, region, host, monkeypatch):
    """Defect 6: AML's API host is per cloud (learn.microsoft.com/azure/machine-learning/
    how-to-configure-network-isolation-with-v2 and the sovereign-cloud pages: api.azureml.ms,
    api.ml.azure.us, api.ml.azure.cn), not always api.azureml.ms."""
    if cloud:
        monkeypatch.setenv("AZUREML_CURRENT_CLOUD", cloud)
    else:
        monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    azure = AzureConfig(
        subscription_id="s", resource_group="r", workspace_name="w", region=region, authority_host=authority
    )
    assert aml.offline_tracking_uri(azure).startswith(f"azureml://{host}/mlflow/v1.0/subscriptions/s/")


@pytest.mark.parametrize(
    ("cloud", "authority"),
    [("AzureCloud", "https://login.microsoftonline.us"), ("AzureChinaCloud", "https://login.microsoftonline.com")],
)
def test_a_cloud_and_an_authority_that_disagree_are_refused(cloud, authority, monkeypatch):
    monkeypatch.setenv("AZUREML_CURRENT_CLOUD", cloud)
    azure = AzureConfig(
        subscription_id="s", resource_group="r", workspace_name="w", region="x", authority_host=authority
    )
    with pytest.raises(ConfigError, match=f"AZUREML_CURRENT_CLOUD is {cloud} but azure.authority_host"):
        aml.offline_tracking_uri(azure)


@pytest.mark.parametrize("region", ["West Europe", "westeurope", "WESTEUROPE"])
def test_region_names_are_normalised(region, monkeypatch):
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    azure = AzureConfig(subscription_id="s", resource_group="r", workspace_name="w", region=region)
    assert aml.offline_tracking_uri(azure).startswith("azureml://westeurope.api.azureml.ms/")


@pytest.mark.parametrize("region", ["west-europe!", "", "eu, west"])
def test_a_region_that_is_not_a_name_is_refused(region):
    azure = AzureConfig(subscription_id="s", resource_group="r", workspace_name="w", region=region or "  ")
    with pytest.raises(ConfigError, match="is not an Azure region name"):
        aml.offline_tracking_uri(azure, {})


def test_the_workspace_is_read_back_from_its_uri():
    uri = aml.offline_tracking_uri(
        AzureConfig(subscription_id="s-1", resource_group="rg", workspace_name="ws", region="x"), {}
    )
    assert aml.workspace_of(uri) == ("s-1", "rg", "ws")


@pytest.mark.parametrize(
    "uri",
    [
        "azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/s/resourceGroups/r",
        "azureml:///mlflow/v1.0/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w",
    ],
)
def test_malformed_aml_uri_is_a_config_error_before_any_credential(uri):
    with pytest.raises(ConfigError, match="is not an AML workspace URI"):
        aml.connect(uri, AzureConfig(), {}, Redactor())
