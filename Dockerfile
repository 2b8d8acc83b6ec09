# ai-cost-exporter: slim Python, non-root, config and data volumes.
#   docker build -t ai-cost-exporter .
#   docker run --rm -p 127.0.0.1:9877:9877 ai-cost-exporter demo --web.listen-address 0.0.0.0:9877
#   docker run -p 9877:9877 -e OPENAI_ADMIN_KEY \
#     -v $PWD/config.yaml:/etc/ai-cost-exporter/config.yaml:ro \
#     -v aicost-data:/var/lib/ai-cost-exporter ai-cost-exporter
#   docker build --build-arg EXTRAS=ingest,aws,gcp -t ai-cost-exporter:cloud .   # bedrock, vertex
FROM python:3.11-slim AS build
# Optional extras, comma-separated: ingest (protobuf bodies on POST /v1/traces; the
# default), aws, gcp (cloud providers). Keep ingest when adding others: ingest,aws,gcp.
ARG EXTRAS="ingest"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/ai-cost-exporter --shell /usr/sbin/nologin aicost \
 && mkdir -p /etc/ai-cost-exporter /var/lib/ai-cost-exporter \
 && chown aicost /var/lib/ai-cost-exporter
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config.example.yaml /etc/ai-cost-exporter/config.yaml
# The healthcheck (GET /-/healthy) reads the port from the running exporter (--web.listen-address, else the
# config's listen_address, else 9877): another port needs no change here.
COPY deploy/docker/healthcheck.py /usr/local/bin/ai-cost-exporter-healthcheck
USER 10001
VOLUME ["/var/lib/ai-cost-exporter"]
EXPOSE 9877
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["python", "/usr/local/bin/ai-cost-exporter-healthcheck"]
ENTRYPOINT ["ai-cost-exporter"]
CMD ["run", "--config", "/etc/ai-cost-exporter/config.yaml"]
