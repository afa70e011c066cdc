// The Key Vault secrets the Spark jobs read to sign in to Azure ML as the service principal.
// Tenant and client ids are always written. The client secret is written only when given;
// otherwise its name is an empty slot to fill with `az keyvault secret set`, which keeps the
// secret out of the deployment history. A redeployment without it leaves that secret alone.

@description('Name of the Key Vault (RBAC-authorized) that holds the secrets.')
param keyVaultName string

@description('Entra ID tenant of the service principal.')
param tenantId string

@description('Application (client) id of the service principal.')
param clientId string

@description('Client secret of the service principal; empty writes no secret.')
@secure()
param clientSecret string

@description('Secret names { tenantId, clientId, clientSecret }, as the job configuration (azure.*_secret keys) expects them.')
param secretNames object

@description('Expiry of the secrets, in seconds since the Unix epoch.')
param expiresOn int

module tenantIdSecret 'secret.bicep' = {
  name: 'secret-tenant-id'
  params: {
    keyVaultName: keyVaultName
    name: secretNames.tenantId
    value: tenantId
    expiresOn: expiresOn
  }
}

module clientIdSecret 'secret.bicep' = {
  name: 'secret-client-id'
  params: {
    keyVaultName: keyVaultName
    name: secretNames.clientId
    value: clientId
    expiresOn: expiresOn
  }
}

module clientSecretSecret 'secret.bicep' = if (!empty(clientSecret)) {
  name: 'secret-client-secret'
  params: {
    keyVaultName: keyVaultName
    name: secretNames.clientSecret
    value: clientSecret
    expiresOn: expiresOn
  }
}

@description('Name of the secret slot for the client secret.')
output clientSecretName string = secretNames.clientSecret
