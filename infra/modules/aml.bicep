// The Azure Machine Learning workspace: MLflow tracking server and model registry for the jobs.

@description('Azure region of the workspace; also the host prefix of its MLflow tracking URI.')
param location string

@description('Name of the Azure ML workspace: 3-33 letters, digits, hyphens or underscores.')
@minLength(3)
@maxLength(33)
param name string

@description('Resource id of the workspace storage account (no hierarchical namespace).')
param storageAccountId string

@description('Resource id of the Key Vault the workspace manages.')
param keyVaultId string

@description('Resource id of the Application Insights component.')
param appInsightsId string

@description('Resource id of the Log Analytics workspace that receives diagnostics.')
param logAnalyticsId string

@description('Tags applied to every resource.')
param tags object

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' = {
  //checkov:skip=CKV_AZURE_243:No managed network with private endpoints in the dev setup: Synapse Spark reaches the MLflow endpoint over TLS with Entra ID auth; production adds a managed network and a Synapse managed private endpoint.
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  sku: {
    name: 'Basic'
    tier: 'Basic'
  }
  properties: {
    friendlyName: name
    storageAccount: storageAccountId
    keyVault: keyVaultId
    applicationInsights: appInsightsId
    publicNetworkAccess: 'Enabled'
    v1LegacyMode: false
  }
}

resource workspaceDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: workspace
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

@description('Name of the Azure ML workspace.')
output name string = workspace.name

@description('Resource id of the Azure ML workspace.')
output id string = workspace.id

@description('MLflow tracking URI of the workspace (azureml:// scheme, served by the azureml-mlflow plugin).')
output mlflowTrackingUri string = 'azureml://${location}.api.azureml.ms/mlflow/v1.0/subscriptions/${subscription().subscriptionId}/resourceGroups/${resourceGroup().name}/providers/Microsoft.MachineLearningServices/workspaces/${workspace.name}'
