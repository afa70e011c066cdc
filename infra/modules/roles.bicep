// Role assignments: least privilege for the jobs' identities and, optionally, the deployer.
// A Spark job definition submitted from Synapse Studio runs as the user who submits it, one run by
// a pipeline as the workspace's managed identity: the Synapse identity's roles serve pipeline runs.
//   service principal          -> AzureML Data Scientist on the Azure ML workspace (MLflow runs, models)
//   Synapse managed identity   -> Key Vault Secrets User on the job vault (reads the SP secrets)
//   Synapse managed identity   -> Storage Blob Data Contributor on the ADLS Gen2 account
//   Synapse managed identity   -> AzureML Data Scientist on the Azure ML workspace (optional:
//                                 pipeline runs with azure.auth managed_identity, no secret)
//   deployer (optional)        -> Storage Blob Data Contributor on the ADLS Gen2 account (uploads,
//                                 and the data a job submitted from Studio reads and writes as them)
//                                 and Key Vault Secrets Officer on the job vault (sets the SP secret)

@description('Name of the Azure ML workspace.')
param amlWorkspaceName string

@description('Name of the Key Vault that holds the service principal secrets.')
param jobKeyVaultName string

@description('Name of the Synapse ADLS Gen2 account.')
param dataLakeAccountName string

@description('Object id of the service principal the jobs sign in to Azure ML with.')
param servicePrincipalObjectId string

@description('Object id of the Synapse workspace managed identity.')
param synapsePrincipalId string

@description('Give the Synapse managed identity AzureML Data Scientist on the Azure ML workspace.')
param synapseIdentityUsesAml bool

@description('Object id of the deployer; empty assigns nothing.')
param deployerObjectId string

@description('Principal type of the deployer.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param deployerPrincipalType string

var roleIds = {
  azureMlDataScientist: 'f6c7c914-8db3-469d-8ca1-694a8f32e121'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
}

resource amlWorkspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = {
  name: amlWorkspaceName
}

resource jobVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: jobKeyVaultName
}

resource dataLake 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataLakeAccountName
}

resource spDataScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(amlWorkspace.id, servicePrincipalObjectId, roleIds.azureMlDataScientist)
  scope: amlWorkspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.azureMlDataScientist)
    principalId: servicePrincipalObjectId
    principalType: 'ServicePrincipal'
  }
}

resource synapseDataScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (synapseIdentityUsesAml) {
  name: guid(amlWorkspace.id, synapsePrincipalId, roleIds.azureMlDataScientist)
  scope: amlWorkspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.azureMlDataScientist)
    principalId: synapsePrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource synapseSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(jobVault.id, synapsePrincipalId, roleIds.keyVaultSecretsUser)
  scope: jobVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsUser)
    principalId: synapsePrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource synapseBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(dataLake.id, synapsePrincipalId, roleIds.storageBlobDataContributor)
  scope: dataLake
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataContributor)
    principalId: synapsePrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource deployerBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerObjectId)) {
  name: guid(dataLake.id, deployerObjectId, roleIds.storageBlobDataContributor)
  scope: dataLake
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataContributor)
    principalId: deployerObjectId
    principalType: deployerPrincipalType
  }
}

resource deployerSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerObjectId)) {
  name: guid(jobVault.id, deployerObjectId, roleIds.keyVaultSecretsOfficer)
  scope: jobVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsOfficer)
    principalId: deployerObjectId
    principalType: deployerPrincipalType
  }
}
