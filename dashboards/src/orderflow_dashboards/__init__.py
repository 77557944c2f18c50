"""orderflow's Grafana dashboards as code, built with grafana-foundation-sdk's Grafana 11.6
schema build (Grafana 11.6 and later read it; 11.x before 11.6 usually do too, as the
dashboard JSON schema changed little within 11.x).

``orderflow-dashboards`` (``make dashboards``) writes every dashboard to dashboards/*.json
and Grafana's datasource provisioning to dashboards/provisioning/; a test checks that the
committed files equal what this code generates.
https://grafana.github.io/grafana-foundation-sdk/
"""
