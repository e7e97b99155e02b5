#!/usr/bin/env bash
# A single-node Apache Kafka 4.4.0 broker in KRaft mode on 127.0.0.1, for the
# Kafka tests and for trying Weir's Kafka source and sink by hand.
#
#   scripts/kafka.sh fetch                  # once: Kafka and its dependencies from Maven Central into .cache/kafka/libs
#   scripts/kafka.sh start DIR [PORT]       # formats DIR and runs a broker on 127.0.0.1:PORT (default 9092) in the foreground
#
# The broker keeps its data in DIR; stop it with SIGTERM. Transactions work
# with one replica (the transaction log's replication factor and min ISR are 1).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1mkafka:\033[0m %s\n' "$*" >&2; }
KAFKA_VERSION=4.4.0
home=$PWD/.cache/kafka

fetch() {
    if [ -f "$home/libs/.complete-$KAFKA_VERSION-2" ]; then
        return
    fi
    local want=()
    command -v java >/dev/null || want+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null || want+=(maven)
    if [ ${#want[@]} -gt 0 ]; then
        command -v apt-get >/dev/null || { say "install Java 17 and Maven (missing: ${want[*]})"; exit 1; }
        # shellcheck source=scripts/apt-install.sh
        . scripts/apt-install.sh
        apt_install "${want[@]}"
    fi
    say "fetching Kafka $KAFKA_VERSION from Maven Central into $home/libs"
    mkdir -p "$home"
    cat > "$home/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.weir</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
POM
    rm -rf "$home/libs"
    mvn -q -B -f "$home/pom.xml" dependency:copy-dependencies -DoutputDirectory="$home/libs" -DincludeScope=runtime
    touch "$home/libs/.complete-$KAFKA_VERSION-2"
}

start() {
    local dir=${1:?usage: scripts/kafka.sh start DIR [PORT]} port=${2:-9092}
    local controller=$((port + 1))
    fetch
    mkdir -p "$dir"
    dir=$(realpath "$dir")
    # Optional TLS and SASL/SCRAM listeners beside PLAINTEXT (the tests'):
    # KAFKA_SSL_PORT and KAFKA_SASL_PORT, with KAFKA_TLS_PEM (the broker's
    # private key and certificate chain, PEM) and, for SASL_SSL,
    # KAFKA_SCRAM_USER / KAFKA_SCRAM_PASSWORD (a SCRAM-SHA-512 user made
    # when the folder is formatted).
    local listeners="PLAINTEXT://127.0.0.1:$port" map="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT" secure=""
    if [ -n "${KAFKA_SSL_PORT:-}" ]; then
        listeners+=",SSL://127.0.0.1:$KAFKA_SSL_PORT,SASL_SSL://127.0.0.1:${KAFKA_SASL_PORT:?KAFKA_SASL_PORT: the SASL_SSL listener}"
        map+=",SSL:SSL,SASL_SSL:SASL_SSL"
        secure="inter.broker.listener.name=PLAINTEXT
ssl.keystore.type=PEM
ssl.keystore.location=${KAFKA_TLS_PEM:?KAFKA_TLS_PEM: the broker key and certificate}
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    fi
    cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller
listeners=$listeners,CONTROLLER://127.0.0.1:$controller
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
listener.security.protocol.map=$map
$secure
log.dirs=$dir/data
num.partitions=4
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
    cat > "$dir/log4j2.properties" <<LOG
rootLogger.level=WARN
rootLogger.appenderRef.file.ref=file
appender.file.type=File
appender.file.name=file
appender.file.fileName=$dir/broker.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
LOG
    local java=(java -Xms256m -Xmx512m -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$home/libs/*")
    if [ ! -f "$dir/data/meta.properties" ]; then
        # The SCRAM password is on this command line (seen by `ps`): for tests.
        local scram=()
        [ -z "${KAFKA_SCRAM_USER:-}" ] ||
            scram=(--add-scram "SCRAM-SHA-512=[name=$KAFKA_SCRAM_USER,password=${KAFKA_SCRAM_PASSWORD:?}]")
        "${java[@]}" kafka.tools.StorageTool format --standalone -t "$("${java[@]}" kafka.tools.StorageTool random-uuid)" \
            -c "$dir/server.properties" "${scram[@]}" >/dev/null
    fi
    exec "${java[@]}" kafka.Kafka "$dir/server.properties"
}

case "${1:-}" in
    fetch) fetch ;;
    start) shift; start "$@" ;;
    *) say "usage: scripts/kafka.sh fetch | start DIR [PORT]"; exit 2 ;;
esac
