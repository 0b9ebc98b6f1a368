module github.com/tapline/tapline

go 1.26.0

require (
	github.com/DataDog/sketches-go v1.4.8
	go.yaml.in/yaml/v3 v3.0.6
)

require google.golang.org/protobuf v1.36.11 // indirect
