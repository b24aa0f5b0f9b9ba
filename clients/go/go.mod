module github.com/circle-bridge/circle-bridge/clients/go

go 1.22
