"""The local cluster profile: a multi-broker KRaft Kafka cluster and a Spark standalone cluster on one machine.

The same job and SQL as local mode; only settings differ (:meth:`ClusterLayout.pipeline_settings`).
"""

from rtap.cluster.kafka import KafkaCluster
from rtap.cluster.layout import ClusterLayout
from rtap.cluster.local import LocalCluster
from rtap.cluster.spark import SparkStandalone

__all__ = ["ClusterLayout", "KafkaCluster", "LocalCluster", "SparkStandalone"]
