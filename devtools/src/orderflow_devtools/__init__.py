"""orderflow developer tools: provisioning and the local stack launcher."""
