"""Offline checks of the Kubernetes deployment (deploy/, skaffold.yaml, the Dockerfiles).

No cluster runs in CI, so what can be known without one is checked here: that every
kustomize combination renders, that every object matches the published schemas, and the
rules we hold ourselves to (resources, autoscaling, Pod Security, the network call graph,
one name per service, non-root images). tests/manifests runs them; each check returns a
list of one-line problems, empty when all is well.
"""
