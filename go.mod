module github.com/tapline/tapline

go 1.26.0
