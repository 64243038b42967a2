toplevel = "pytest_metaflow_toplevel"
