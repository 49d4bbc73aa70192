"""`kracked parquet`: archive any set of topics as Hive-style Parquet datasets, exactly once.

Layout `<dir>/<topic>/symbol=<BASE-QUOTE>/date=<YYYY-MM-DD>/<partition>-<first>-<last>.parquet`
(`layout`), Avro → Arrow types with exact decimal128(38, 18) and microsecond UTC timestamps
(`arrow_schema`), per-partition buffering with tmp + fsync + rename before any offset commit
(`writer`), small-file compaction (`compact`) and the legacy wide top-of-book dataset (`wide`).
Read it with DuckDB: `read_parquet('<dir>/<topic>/**/*.parquet', hive_partitioning=true)`.
"""

from consumers.parquet.arrow_schema import TableSpec, avro_to_arrow, table_spec
from consumers.parquet.compact import CompactStats, compact
from consumers.parquet.wide import WideBook, wide_columns
from consumers.parquet.writer import Commit, ParquetWriter, Rejected, WriterConfig

__all__ = [
    "Commit",
    "CompactStats",
    "ParquetWriter",
    "Rejected",
    "TableSpec",
    "WideBook",
    "WriterConfig",
    "avro_to_arrow",
    "compact",
    "table_spec",
    "wide_columns",
]
