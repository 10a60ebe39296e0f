"""The local cluster profile: a multi-broker KRaft Kafka cluster and a Spark standalone cluster on one machine.

The same job and SQL as local mode; only settings differ (:meth:`ClusterLayout.pipeline_settings`).
"""

from rtap.runtime.cluster.kafka import KafkaCluster
from rtap.runtime.cluster.layout import ClusterLayout
from rtap.runtime.cluster.local import LocalCluster
from rtap.runtime.cluster.spark import SparkStandalone

__all__ = ["ClusterLayout", "KafkaCluster", "LocalCluster", "SparkStandalone"]
