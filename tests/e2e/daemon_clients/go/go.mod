module circlebridge.test/daemonclients

go 1.22

require github.com/circle-bridge/circle-bridge/clients/go v0.0.0

replace github.com/circle-bridge/circle-bridge/clients/go => ../../../../clients/go
