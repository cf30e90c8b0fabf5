// Drives cargohold with the AWS SDK for Go v2, unchanged; run by tests/test_client_go.py.
//
//	s3client SCENARIO    (roundtrip, signing, transfer, copy, conditional, range, presign, errors)
//
// Built by tests/go/build from Debian's golang-github-aws-aws-sdk-go-v2-dev (GOPATH mode,
// offline). Settings come from the environment: CH_ENDPOINT, CH_ACCESS_KEY, CH_SECRET_KEY,
// CH_REGION, CH_BUCKET and, for "transfer", CH_FILE (uploaded by manager.Uploader), CH_SMALL_FILE
// (under one part: a single PutObject) and CH_OUT (where manager.Downloader writes the object).
// The client keeps every default (retries, payload signing, Content-MD5 on DeleteObjects,
// the http client LoadDefaultConfig resolves) except the endpoint, path-style addressing,
// region and static credentials.
//
// Prints one JSON object of what the SDK saw to stdout and exits 0; on an unexpected error
// prints {"error": ..., "requests": [...]} and exits 1. Every request the SDK sends is
// recorded (operation, method, path, query, a few headers, the signed header names, response
// status) by an http client wrapper that only looks: it changes nothing.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

const mib = 1024 * 1024

type object = map[string]any

func env(name string) string {
	value := os.Getenv(name)
	if value == "" {
		panic(fmt.Sprintf("missing setting %s", name))
	}
	return value
}

// recordedHeaders are the request headers worth reporting (lower case), with every
// x-amz-checksum-* (x-amz-meta-* go to "meta").
var recordedHeaders = map[string]bool{
	"x-amz-content-sha256": true, "content-md5": true, "content-type": true,
	"x-amz-copy-source": true, "x-amz-metadata-directive": true, "if-match": true,
	"if-none-match": true, "range": true, "x-amz-date": true,
	"x-amz-sdk-checksum-algorithm": true, "x-amz-trailer": true, "content-encoding": true,
	"x-amz-decoded-content-length": true,
}

// recorder keeps what a recordingClient saw.
type recorder struct {
	mu       sync.Mutex
	requests []object
}

// recordingClient is the http client LoadDefaultConfig resolved, with a look at every
// request it sends. (Wrapped, it no longer gets the defaults mode's connect and TLS
// timeouts, which the default "legacy" mode leaves unset anyway.)
type recordingClient struct {
	inner aws.HTTPClient
	rec   *recorder
	// tamper, when set, flips the first byte of every request body after signing: the
	// bytes no longer match the signed x-amz-content-sha256 (for the "signing" scenario).
	tamper bool
}

func (r *recordingClient) Do(req *http.Request) (*http.Response, error) {
	headers, metadata := object{}, object{}
	for name, values := range req.Header {
		lower := strings.ToLower(name)
		switch {
		case strings.HasPrefix(lower, "x-amz-meta-"):
			metadata[lower] = values[0]
		case recordedHeaders[lower] || strings.HasPrefix(lower, "x-amz-checksum-"):
			headers[lower] = values[0]
		}
	}
	query := object{}
	for name, values := range req.URL.Query() {
		query[name] = values[0]
	}
	entry := object{
		"op":            awsmiddleware.GetOperationName(req.Context()),
		"method":        req.Method,
		"path":          req.URL.EscapedPath(),
		"query":         query,
		"headers":       headers,
		"meta":          metadata,
		"contentLength": req.ContentLength,
		"signedHeaders": signedHeaders(req.Header.Get("Authorization")),
	}
	if r.tamper && req.Body != nil && req.ContentLength > 0 {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body.Close()
		body[0] ^= 0xff
		req.Body = io.NopCloser(bytes.NewReader(body))
		entry["tampered"] = true
	}
	resp, err := r.inner.Do(req)
	if resp != nil {
		entry["status"] = resp.StatusCode
		if cr := resp.Header.Get("Content-Range"); cr != "" {
			entry["contentRange"] = cr
		}
	}
	r.rec.mu.Lock()
	r.rec.requests = append(r.rec.requests, entry)
	r.rec.mu.Unlock()
	return resp, err
}

// signedHeaders is the SignedHeaders list of a SigV4 Authorization header.
func signedHeaders(authorization string) []string {
	for _, part := range strings.Split(authorization, ",") {
		part = strings.TrimSpace(part)
		if strings.HasPrefix(part, "SignedHeaders=") {
			return strings.Split(strings.TrimPrefix(part, "SignedHeaders="), ";")
		}
	}
	return []string{}
}

func (r *recorder) all() []object {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]object{}, r.requests...)
}

var (
	ctx    = context.Background()
	bucket string
	rec    = &recorder{}
	client *s3.Client
)

// newClient is a stock client but for endpoint, path-style, region and static credentials,
// whose requests go to log.
func newClient(accessKey, secretKey string, log *recorder, tamper bool) *s3.Client {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(env("CH_REGION")),
		config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(accessKey, secretKey, "")),
	)
	if err != nil {
		panic(err)
	}
	inner := cfg.HTTPClient
	if inner == nil {
		inner = awshttp.NewBuildableClient()
	}
	cfg.HTTPClient = &recordingClient{inner: inner, rec: log, tamper: tamper}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.EndpointResolver = s3.EndpointResolverFromURL(env("CH_ENDPOINT"))
		o.UsePathStyle = true
	})
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func randomBytes(n int) []byte {
	data := make([]byte, n)
	if _, err := rand.Read(data); err != nil {
		panic(err)
	}
	return data
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// failure is an expected error as the SDK surfaces it; a non-service error panics.
func failure(err error) object {
	if err == nil {
		return nil
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		panic(fmt.Errorf("not a service error: %w", err))
	}
	out := object{"code": apiErr.ErrorCode(), "message": apiErr.ErrorMessage(),
		"type": fmt.Sprintf("%T", apiErr)}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		out["httpStatusCode"] = respErr.HTTPStatusCode()
		out["requestId"] = respErr.ServiceRequestID()
	}
	var s3Err s3.ResponseError
	if errors.As(err, &s3Err) {
		out["hostId"] = s3Err.ServiceHostID()
	}
	var noSuchKey *types.NoSuchKey
	out["isNoSuchKey"] = errors.As(err, &noSuchKey)
	var noSuchBucket *types.NoSuchBucket
	out["isNoSuchBucket"] = errors.As(err, &noSuchBucket)
	var notFound *types.NotFound
	out["isNotFound"] = errors.As(err, &notFound)
	return out
}

func str(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func getBody(key string, edit func(*s3.GetObjectInput)) object {
	input := &s3.GetObjectInput{Bucket: &bucket, Key: aws.String(key)}
	if edit != nil {
		edit(input)
	}
	out, err := client.GetObject(ctx, input)
	must(err)
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	must(err)
	result := object{
		"sha256": sha256Hex(data), "length": len(data), "contentLength": out.ContentLength,
		"contentType": str(out.ContentType), "etag": str(out.ETag), "metadata": out.Metadata,
		"contentRange": str(out.ContentRange), "acceptRanges": str(out.AcceptRanges),
		"lastModified": out.LastModified != nil,
	}
	if len(data) <= 4096 && utf8.Valid(data) {
		result["text"] = string(data)
	}
	return result
}

// roundtrip: PutObject, GetObject, HeadObject, ListObjectsV2 (paginator and delimiter),
// DeleteObjects and DeleteObject.
func roundtrip() object {
	text := "hello from the AWS SDK for Go v2\n"
	binary := randomBytes(70000)
	putText, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("docs/hello.txt"), Body: strings.NewReader(text),
		ContentType: aws.String("text/plain; charset=utf-8"),
		Metadata:    map[string]string{"origin": "go-sdk", "purpose": "round-trip"},
	})
	must(err)
	putBinary, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("docs/data.bin"), Body: bytes.NewReader(binary),
		ContentType: aws.String("application/x-cargohold-test"),
		Metadata:    map[string]string{"Mixed-Case-Key": "Value With Spaces"},
	})
	must(err)
	putEmpty, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("docs/empty"), Body: bytes.NewReader(nil),
	})
	must(err)

	head, err := client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: &bucket, Key: aws.String("docs/data.bin")})
	must(err)

	listKeys := []string{"list/a", "list/b", "list/space key", "list/plus+sign",
		"list/amp&<xml>", "list/ünïcödé", "list/tilde~star*", "list/zz"}
	for _, key := range listKeys {
		_, err := client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &bucket, Key: aws.String(key), Body: strings.NewReader("body of " + key)})
		must(err)
	}
	pages := []object{}
	paginator := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{
		Bucket: &bucket, Prefix: aws.String("list/"), MaxKeys: 3})
	for paginator.HasMorePages() {
		page, err := paginator.NextPage(ctx)
		must(err)
		keys, sizes := []string{}, []int64{}
		for _, o := range page.Contents {
			keys = append(keys, *o.Key)
			sizes = append(sizes, o.Size)
		}
		pages = append(pages, object{"keys": keys, "sizes": sizes, "keyCount": page.KeyCount,
			"isTruncated": page.IsTruncated, "hasNextToken": page.NextContinuationToken != nil})
	}
	delimited, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: &bucket, Delimiter: aws.String("/")})
	must(err)
	prefixes := []string{}
	for _, p := range delimited.CommonPrefixes {
		prefixes = append(prefixes, *p.Prefix)
	}

	// Read everything back before the deletes.
	getText := getBody("docs/hello.txt", nil)
	getBinary := getBody("docs/data.bin", nil)
	getEmpty := getBody("docs/empty", nil)

	deleteKeys := []string{"list/a", "list/b", "list/space key", "list/plus+sign",
		"list/amp&<xml>", "list/never-existed"}
	ids := []types.ObjectIdentifier{}
	for _, key := range deleteKeys {
		ids = append(ids, types.ObjectIdentifier{Key: aws.String(key)})
	}
	deleted, err := client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: &bucket, Delete: &types.Delete{Objects: ids}})
	must(err)
	deletedKeys, deleteErrors := []string{}, []string{}
	for _, d := range deleted.Deleted {
		deletedKeys = append(deletedKeys, *d.Key)
	}
	for _, e := range deleted.Errors {
		deleteErrors = append(deleteErrors, *e.Key+": "+*e.Code)
	}
	_, err = client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: &bucket, Key: aws.String("docs/hello.txt")})
	must(err)
	remaining := []string{}
	rest, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket})
	must(err)
	for _, o := range rest.Contents {
		remaining = append(remaining, *o.Key)
	}

	return object{
		"text": text, "textSha256": sha256Hex([]byte(text)),
		"binarySha256": sha256Hex(binary), "binaryLength": len(binary),
		"putText":   object{"etag": str(putText.ETag)},
		"putBinary": object{"etag": str(putBinary.ETag)},
		"putEmpty":  object{"etag": str(putEmpty.ETag)},
		"getText":   getText, "getBinary": getBinary, "getEmpty": getEmpty,
		"head": object{"etag": str(head.ETag), "contentLength": head.ContentLength,
			"contentType": str(head.ContentType), "metadata": head.Metadata,
			"lastModified": head.LastModified != nil},
		"listKeys": listKeys, "pages": pages,
		"delimited": object{"prefixes": prefixes, "keyCount": delimited.KeyCount,
			"contents": len(delimited.Contents)},
		"deleteKeys": deleteKeys, "deleted": deletedKeys, "deleteErrors": deleteErrors,
		"remaining": remaining,
	}
}

// signing: the SHA-256 of every payload, signed (over http the SDK never sends
// UNSIGNED-PAYLOAD); a body changed after signing is refused.
func signing() object {
	body := randomBytes(mib + 4321)
	put, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("signed.bin"), Body: bytes.NewReader(body)})
	must(err)
	got := getBody("signed.bin", nil)

	tamperer := &recorder{}
	tampering := newClient(env("CH_ACCESS_KEY"), env("CH_SECRET_KEY"), tamperer, true)
	_, tamperErr := tampering.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("tampered.bin"), Body: bytes.NewReader(body)})
	if tamperErr == nil {
		panic("a body changed after signing was accepted")
	}
	return object{
		"bodySha256": sha256Hex(body), "bodyLength": len(body),
		"put": object{"etag": str(put.ETag)}, "get": got,
		"tampered": failure(tamperErr), "tamperedRequests": tamperer.all(),
	}
}

// transfer: manager.Uploader (5 MiB parts, 4 at a time) and manager.Downloader (5 MiB
// ranges, 4 at a time) of CH_FILE; manager.Uploader of CH_SMALL_FILE (one PutObject).
func transfer() object {
	file, err := os.Open(env("CH_FILE"))
	must(err)
	defer file.Close()
	uploader := manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = 5 * mib
		u.Concurrency = 4
	})
	uploaded, err := uploader.Upload(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("big/object.bin"), Body: file,
		ContentType: aws.String("application/x-go-upload"),
		Metadata:    map[string]string{"tool": "manager.Uploader"},
	})
	must(err)
	parts := []object{}
	for _, p := range uploaded.CompletedParts {
		parts = append(parts, object{"partNumber": p.PartNumber, "etag": str(p.ETag)})
	}

	small, err := os.Open(env("CH_SMALL_FILE"))
	must(err)
	defer small.Close()
	smallUploaded, err := uploader.Upload(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("small/object.bin"), Body: small})
	must(err)

	out, err := os.Create(env("CH_OUT"))
	must(err)
	defer out.Close()
	downloader := manager.NewDownloader(client, func(d *manager.Downloader) {
		d.PartSize = 5 * mib
		d.Concurrency = 4
	})
	started := time.Now()
	written, err := downloader.Download(ctx, out, &s3.GetObjectInput{
		Bucket: &bucket, Key: aws.String("big/object.bin")})
	must(err)
	return object{
		"upload": object{"uploadId": uploaded.UploadID, "location": uploaded.Location,
			"parts": parts},
		"smallUpload": object{"uploadId": smallUploaded.UploadID,
			"parts": len(smallUploaded.CompletedParts)},
		"downloaded":      written,
		"downloadSeconds": time.Since(started).Seconds(),
	}
}

// copy: CopyObject with the metadata copied (the default) and replaced.
func copyScenario() object {
	put, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("source.txt"),
		Body: strings.NewReader("the source object\n"), ContentType: aws.String("text/plain"),
		Metadata: map[string]string{"generation": "one"},
	})
	must(err)
	copied, err := client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: &bucket, Key: aws.String("copy of source.txt"),
		CopySource: aws.String(bucket + "/source.txt")})
	must(err)
	replaced, err := client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: &bucket, Key: aws.String("replaced/ünïcödé copy.txt"),
		CopySource:        aws.String(bucket + "/source.txt"),
		MetadataDirective: types.MetadataDirectiveReplace,
		ContentType:       aws.String("text/x-copied"),
		Metadata:          map[string]string{"generation": "two", "copied": "yes"},
	})
	must(err)
	_, missingErr := client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: &bucket, Key: aws.String("never.txt"),
		CopySource: aws.String(bucket + "/no-such-source.txt")})
	return object{
		"put": object{"etag": str(put.ETag)},
		"copy": object{"etag": str(copied.CopyObjectResult.ETag),
			"lastModified": copied.CopyObjectResult.LastModified != nil},
		"replace":       object{"etag": str(replaced.CopyObjectResult.ETag)},
		"copied":        getBody("copy of source.txt", nil),
		"replaced":      getBody("replaced/ünïcödé copy.txt", nil),
		"missingSource": failure(missingErr),
	}
}

// conditional: If-None-Match / If-Match on GetObject and HeadObject.
func conditional() object {
	put, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("conditional.txt"),
		Body: strings.NewReader("conditional body\n")})
	must(err)
	_, notModified := client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &bucket, Key: aws.String("conditional.txt"), IfNoneMatch: put.ETag})
	_, headNotModified := client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: &bucket, Key: aws.String("conditional.txt"), IfNoneMatch: put.ETag})
	_, failed := client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &bucket, Key: aws.String("conditional.txt"),
		IfMatch: aws.String(`"0123456789abcdef0123456789abcdef"`)})
	return object{
		"etag": str(put.ETag), "notModified": failure(notModified),
		"headNotModified": failure(headNotModified), "preconditionFailed": failure(failed),
		"matched": getBody("conditional.txt", func(in *s3.GetObjectInput) {
			in.IfMatch = put.ETag
		}),
		"otherEtag": getBody("conditional.txt", func(in *s3.GetObjectInput) {
			in.IfNoneMatch = aws.String(`"0123456789abcdef0123456789abcdef"`)
		}),
	}
}

// rangeScenario: ranged GetObject (bounded, suffix, open-ended, past the end).
func rangeScenario() object {
	data := randomBytes(70000)
	_, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("ranged.bin"), Body: bytes.NewReader(data)})
	must(err)
	ranges := object{}
	for _, r := range []string{"bytes=1000-1999", "bytes=-500", "bytes=69990-",
		"bytes=69000-80000"} {
		value := r
		ranges[r] = getBody("ranged.bin", func(in *s3.GetObjectInput) { in.Range = &value })
	}
	_, unsatisfiable := client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &bucket, Key: aws.String("ranged.bin"), Range: aws.String("bytes=70000-")})
	return object{"sha256": sha256Hex(data), "ranges": ranges,
		"unsatisfiable": failure(unsatisfiable)}
}

type plainResult struct {
	Status int    `json:"status"`
	ETag   string `json:"etag"`
	Sha256 string `json:"sha256"`
	Length int    `json:"length"`
	Text   string `json:"text"`
}

// plain sends a presigned request with net/http alone: the URL, and the headers given.
func plain(method, url string, header http.Header, body []byte) plainResult {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	must(err)
	for name, values := range header {
		if !strings.EqualFold(name, "Host") {
			req.Header[name] = values
		}
	}
	resp, err := http.DefaultClient.Do(req)
	must(err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	must(err)
	result := plainResult{Status: resp.StatusCode, ETag: resp.Header.Get("ETag"),
		Sha256: sha256Hex(data), Length: len(data)}
	if len(data) <= 4096 && utf8.Valid(data) {
		result.Text = string(data)
	}
	return result
}

func tamper(url string) string {
	at := strings.Index(url, "X-Amz-Signature=") + len("X-Amz-Signature=")
	flipped := byte('0')
	if url[at] == '0' {
		flipped = '1'
	}
	return url[:at] + string(flipped) + url[at+1:]
}

func queryNames(header http.Header) []string {
	names := []string{}
	for name := range header {
		names = append(names, strings.ToLower(name))
	}
	sort.Strings(names)
	return names
}

// presign: presigned GET and PUT URLs used by plain net/http.
func presign() object {
	presigner := s3.NewPresignClient(client, s3.WithPresignExpires(5*time.Minute))
	body := randomBytes(100000)
	putReq, err := presigner.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("presigned.bin")})
	must(err)
	put := plain(putReq.Method, putReq.URL, putReq.SignedHeader, body)
	getReq, err := presigner.PresignGetObject(ctx, &s3.GetObjectInput{
		Bucket: &bucket, Key: aws.String("presigned.bin")})
	must(err)
	get := plain(getReq.Method, getReq.URL, getReq.SignedHeader, nil)

	// Content-Type and x-amz-meta-* stay headers, signed: the plain client must send them.
	metaReq, err := presigner.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("presigned-meta.txt"),
		ContentType: aws.String("text/x-presigned"),
		Metadata:    map[string]string{"color": "blue"},
	})
	must(err)
	// This SDK drops ContentType from a presigned PUT (neither signed nor in the URL): the
	// plain client sends it unsigned, as S3 allows.
	withType := metaReq.SignedHeader.Clone()
	withType.Set("Content-Type", "text/x-presigned")
	metaPut := plain(metaReq.Method, metaReq.URL, withType, []byte("presigned with metadata\n"))
	withoutMeta := http.Header{}
	for name, values := range metaReq.SignedHeader {
		if !strings.HasPrefix(strings.ToLower(name), "x-amz-meta-") {
			withoutMeta[name] = values
		}
	}
	unsentHeaderReq, err := presigner.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("unsent-header.txt"),
		Metadata: map[string]string{"color": "red"},
	})
	must(err)
	unsentHeader := plain(unsentHeaderReq.Method, unsentHeaderReq.URL, withoutMeta,
		[]byte("the signed x-amz-meta-color header is missing\n"))

	badGet := plain(getReq.Method, tamper(getReq.URL), getReq.SignedHeader, nil)
	badPutReq, err := presigner.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("tampered.txt")})
	must(err)
	badPut := plain(badPutReq.Method, tamper(badPutReq.URL), badPutReq.SignedHeader, body)
	return object{
		"bodySha256": sha256Hex(body), "bodyLength": len(body),
		"putUrl": putReq.URL, "putMethod": putReq.Method,
		"putSignedHeaders": queryNames(putReq.SignedHeader), "put": put,
		"getUrl": getReq.URL, "getMethod": getReq.Method, "get": get,
		"metaUrl": metaReq.URL, "metaSignedHeaders": queryNames(metaReq.SignedHeader),
		"metaPut": metaPut, "unsentHeader": unsentHeader,
		"badGet": badGet, "badPut": badPut,
	}
}

// errorsScenario: the errors the SDK surfaces, as smithy APIErrors.
func errorsScenario() object {
	wrongSecret := newClient(env("CH_ACCESS_KEY"), "not-the-secret-key-at-all-000000000000",
		rec, false)
	_, badSecretPut := wrongSecret.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("never-written.txt"),
		Body: strings.NewReader("refused")})
	_, badSecretList := wrongSecret.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket})
	wrongKey := newClient("CHNOSUCHACCESSKEY000", env("CH_SECRET_KEY"), rec, false)
	_, badKey := wrongKey.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket})
	_, missingKey := client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &bucket, Key: aws.String("no such key.txt")})
	_, missingHead := client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: &bucket, Key: aws.String("no such key.txt")})
	missing := bucket + "-missing"
	_, missingBucketGet := client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &missing, Key: aws.String("x")})
	_, missingBucketList := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &missing})
	return object{
		"badSecretPut": failure(badSecretPut), "badSecretList": failure(badSecretList),
		"badAccessKey": failure(badKey), "missingKey": failure(missingKey),
		"missingHead": failure(missingHead), "missingBucketGet": failure(missingBucketGet),
		"missingBucketList": failure(missingBucketList),
	}
}

var scenarios = map[string]func() object{
	"roundtrip": roundtrip, "signing": signing, "transfer": transfer, "copy": copyScenario,
	"conditional": conditional, "range": rangeScenario, "presign": presign,
	"errors": errorsScenario,
}

func main() {
	names := []string{}
	for name := range scenarios {
		names = append(names, name)
	}
	sort.Strings(names)
	if len(os.Args) != 2 || scenarios[os.Args[1]] == nil {
		fmt.Fprintf(os.Stderr, "usage: s3client {%s}\n", strings.Join(names, ","))
		os.Exit(2)
	}
	bucket = env("CH_BUCKET")
	client = newClient(env("CH_ACCESS_KEY"), env("CH_SECRET_KEY"), rec, false)
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetEscapeHTML(false)
	defer func() {
		if recovered := recover(); recovered != nil {
			_ = encoder.Encode(object{"error": fmt.Sprint(recovered), "requests": rec.all()})
			fmt.Fprintln(os.Stderr, recovered)
			os.Exit(1)
		}
	}()
	result := scenarios[os.Args[1]]()
	result["requests"] = rec.all()
	must(encoder.Encode(result))
}
