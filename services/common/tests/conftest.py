import os

# The HTTP instrumentation reads its semantic-convention mode from the environment, once per
# process, as the services do (dapr.yaml, the service-env ConfigMap): set before any test.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
