# One image for every service: the container's command picks which ones it runs (--services).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/authplane ./cmd/authplane

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/authplane /usr/local/bin/authplane
USER nonroot
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/authplane"]
CMD ["serve"]
