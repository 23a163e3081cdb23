module github.com/revocast/revocast

go 1.26
