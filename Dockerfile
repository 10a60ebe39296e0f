# syntax=docker/dockerfile:1
# The rtap image: one image for every role of the compose stack. The role is the command:
#   docker run rtap:0.1.0 stream | produce --rate 1000 | dashboard | migrate | metabase provision
# Stages:
#   jars     Spark's Kafka connector from jars/pom.xml (profile `spark`, the same pom as `make jars`)
#   wheel    rtap's wheel, installed with its exact pins (pyproject.toml, constraints.txt) into a virtualenv
#   runtime  that virtualenv, the jars and Debian's JRE 17 on a slim Python, run by a non-root user
# deploy/compose/compose.yaml builds it; docs/compose.md explains the stack.

FROM maven:3.9.11-eclipse-temurin-17 AS jars
WORKDIR /build
COPY jars/pom.xml jars/settings.xml ./
# The cache mount keeps ~/.m2 between builds without putting it in a layer. settings.xml maps a
# repository Spark's parent POM declares onto Maven Central (see the file).
RUN --mount=type=cache,target=/root/.m2 \
    mvn --batch-mode --quiet -s settings.xml -P spark dependency:copy-dependencies \
        -DoutputDirectory=/build/lib/spark -DincludeScope=runtime

FROM python:3.11.14-slim-bookworm AS wheel
WORKDIR /src
# README.md stays out of the context (.dockerignore): the image needs the code, not the long
# description, and setuptools only warns without it.
COPY pyproject.toml constraints.txt ./
COPY src ./src
RUN python -m venv /opt/rtap/venv \
    && /opt/rtap/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && /opt/rtap/venv/bin/pip install --no-cache-dir -c constraints.txt /wheels/rtap-*.whl

# Bookworm, not trixie: trixie has no OpenJDK 17, and Spark 4.1 with the Kafka connector is run and
# tested here on Java 17.
FROM python:3.11.14-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="rtap" \
      org.opencontainers.image.description="Real-time clickstream analytics: Kafka -> Spark -> ClickHouse -> dashboards" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
# Debian's security updates replace package versions in the archive, so an exact apt pin would break
# the build within weeks; the base image tag pins the release (bookworm) instead.
# The man directory: slim images drop it and the JRE's postinst registers its man pages there.
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*
# uid/gid 185 (once chosen to match the official Spark image's `spark` user): the compose stack's volumes are
# owned by it, so it stays.
RUN groupadd --system --gid 185 rtap \
    && useradd --system --uid 185 --gid rtap --home-dir /var/lib/rtap --shell /usr/sbin/nologin rtap \
    && install -d -o rtap -g rtap /var/lib/rtap /var/lib/rtap/checkpoints /var/lib/rtap/truth
COPY --from=wheel /opt/rtap/venv /opt/rtap/venv
COPY --from=jars /build/lib/spark /opt/rtap/jars/spark
# Every server listens on the container's own loopback, as rtap does anywhere, unless told otherwise: the
# compose file says which listen beyond it (the dashboard, with its password; the metrics, for Prometheus in
# the compose network) and which ports reach the host.
ENV PATH=/opt/rtap/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RTAP_DATA_DIR=/var/lib/rtap \
    RTAP_JARS_DIR=/opt/rtap/jars
WORKDIR /var/lib/rtap
# Numeric, so a runtime that checks for a non-root user (Kubernetes runAsNonRoot) can verify it.
USER 185:185
EXPOSE 8050 4040 9464 9465 9466
# For the default command (the dashboard); compose gives each other role its own check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8050/api/health', timeout=4)"]
ENTRYPOINT ["rtap"]
CMD ["dashboard"]
