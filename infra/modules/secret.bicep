// One Key Vault secret with a content type and an expiry date.

@description('Name of the Key Vault that holds the secret.')
param keyVaultName string

@description('Name of the secret.')
param name string

@description('Value of the secret.')
@secure()
param value string

@description('Expiry of the secret, in seconds since the Unix epoch.')
param expiresOn int

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: name
  properties: {
    value: value
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: expiresOn
    }
  }
}
