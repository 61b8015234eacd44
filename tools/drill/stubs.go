package main

import "context"

func clockSkew(ctx context.Context, e *env) (*result, error)   { return &result{}, nil }
