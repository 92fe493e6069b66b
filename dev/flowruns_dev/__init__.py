"""The repository's development harness, not shipped in the wheel: a real Airflow stack
(``airflow_stack``), the emulator fleet that points the example DAGs at it (``fleet``), moto's S3
server (``moto``), a self-signed certificate (``tls``) and the dbt Cloud emulator the benchmarks
measure against (``dbtcloud_app``). Tests reach it through pytest's ``pythonpath``, the benchmarks and
tools through ``PYTHONPATH=dev`` (see the Makefile)."""
