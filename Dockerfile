# Postern in a container: static binaries on distroless, run as a non-root
# user, the data in the /data volume.
#   docker build -t postern .
#   docker run -p 4444:4444 -v postern-data:/data -e POSTERN_SECRET=... postern
# docker-compose.yml runs the server, the gateway and the echo backend.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO off: static binaries that need no libc in the final images.
RUN CGO_ENABLED=0 go build -trimpath -o /out/ ./cmd/postern ./examples/echo-backend

# The demo backend of docker-compose.yml.
FROM gcr.io/distroless/static-debian12:nonroot AS echo-backend
COPY --from=build /out/echo-backend /usr/local/bin/echo-backend
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/echo-backend", "--listen", "0.0.0.0:9000"]

# The default target: postern (serve, or gateway with another command).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/postern /usr/local/bin/postern
COPY examples/quickstart/postern.json /etc/postern/postern.json
# The store (and, without POSTERN_SECRET, the development secret) live here.
VOLUME ["/data"]
USER nonroot:nonroot
EXPOSE 4444
# distroless has neither shell nor curl: the binary asks /healthz itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/postern", "healthcheck", "http://127.0.0.1:4444/healthz"]
ENTRYPOINT ["/usr/local/bin/postern"]
CMD ["serve", "--config", "/etc/postern/postern.json", "--addr", "0.0.0.0:4444", "--issuer", "http://127.0.0.1:4444", "--data", "/data"]
