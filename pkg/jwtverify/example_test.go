package jwtverify_test

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/pkg/jwtverify"
)

func Example() {
	secret := []byte(strings.Repeat("k", jwtverify.MinHMACSecretLength))
	v, err := jwtverify.New(
		jwtverify.WithAlgorithms("HS256"), // required: the allow-list
		jwtverify.WithHMACSecret(secret),
		jwtverify.WithIssuers("https://idp.example"),
		jwtverify.WithLeeway(10*time.Second),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	raw, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice", "iss": "https://idp.example", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	c, err := v.Verify(raw)
	fmt.Println(c.Subject, c.Algorithm, err)

	// A bad option is an error, never a silent default.
	_, err = jwtverify.New(jwtverify.WithAlgorithms("HS256"), jwtverify.WithHMACSecret(secret),
		jwtverify.WithLeeway(-time.Second))
	fmt.Println(errors.Is(err, jwtverify.ErrInvalidOption), err)
	// Output:
	// alice HS256 <nil>
	// true leeway -1s must not be negative
}
