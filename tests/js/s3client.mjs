// Drives cargohold with the AWS SDK for JavaScript v3, unchanged; run by tests/test_client_js.py.
//
//   node s3client.mjs SCENARIO    (roundtrip, upload, presign, presign_acl, copy)
//
// Settings come from the environment: CH_ENDPOINT, CH_ACCESS_KEY, CH_SECRET_KEY, CH_REGION,
// CH_BUCKET and, for "upload", CH_FILE (uploaded in parts by lib-storage) and CH_SMALL_FILE
// (a PutObject of a file stream). The client keeps every default (retries; checksums:
// requestChecksumCalculation / responseChecksumValidation "WHEN_SUPPORTED") except
// endpoint, forcePathStyle, region and credentials.
//
// Prints one JSON object of what the SDK saw to stdout and exits 0; on an unexpected error
// prints {"error": {name, message, httpStatusCode, ...}, "$metadata": ...} and exits 1.
// Every request the client sends is recorded (method, path, query, a few headers, response
// status) by a middleware that only looks: it changes nothing.

import { createHash, randomBytes } from "node:crypto";
import { createReadStream, statSync } from "node:fs";
import { crc32 } from "node:zlib";

import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`missing setting ${name}`);
  return value;
};

const Bucket = env("CH_BUCKET");
const client = new S3Client({
  endpoint: env("CH_ENDPOINT"),
  forcePathStyle: true,
  region: env("CH_REGION"),
  credentials: { accessKeyId: env("CH_ACCESS_KEY"), secretAccessKey: env("CH_SECRET_KEY") },
});

// What went over the wire, as the server got it (the deserialize step runs after signing).
const RECORDED_HEADERS = new RegExp("^(" + [
  "x-amz-checksum-", "x-amz-sdk-checksum-algorithm$", "x-amz-content-sha256$", "x-amz-trailer$",
  "x-amz-decoded-content-length$", "content-encoding$", "content-md5$", "transfer-encoding$",
  "content-length$", "content-type$", "x-amz-copy-source$", "x-amz-metadata-directive$", "if-",
].join("|") + ")");
const requests = [];
client.middlewareStack.add(
  (next, context) => async (args) => {
    const { request } = args;
    const headers = {};
    for (const [name, value] of Object.entries(request.headers ?? {})) {
      if (RECORDED_HEADERS.test(name.toLowerCase())) headers[name.toLowerCase()] = value;
    }
    const entry = {
      command: context.commandName,
      method: request.method,
      path: request.path,
      query: request.query ?? {},
      headers,
    };
    requests.push(entry);
    try {
      const result = await next(args);
      entry.status = result.response?.statusCode;
      return result;
    } catch (err) {
      entry.status = err?.$metadata?.httpStatusCode ?? err?.$response?.statusCode;
      throw err;
    }
  },
  { step: "deserialize", name: "cargoholdRecorder", priority: "low" },
);

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");
const crc32b64 = (bytes) => {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(bytes) >>> 0);
  return out.toString("base64");
};
const sent = (command) => requests.filter((r) => r.command === command);

/** An expected error as the SDK surfaces it. */
const failure = (err) => ({
  name: err?.name,
  code: err?.Code,
  message: err?.message,
  httpStatusCode: err?.$metadata?.httpStatusCode,
  requestId: err?.$metadata?.requestId,
});

async function expectError(promise) {
  try {
    await promise;
  } catch (err) {
    if (err?.$metadata === undefined) throw err; // not a service error: a real failure
    return failure(err);
  }
  return null;
}

async function getBody(Key, extra = {}) {
  const out = await client.send(new GetObjectCommand({ Bucket, Key, ...extra }));
  const bytes = Buffer.from(await out.Body.transformToByteArray());
  return {
    status: out.$metadata.httpStatusCode,
    sha256: sha256(bytes),
    length: bytes.length,
    text: bytes.length <= 4096 ? bytes.toString("utf8") : null,
    contentType: out.ContentType,
    contentLength: out.ContentLength,
    etag: out.ETag,
    metadata: out.Metadata,
    checksumCRC32: out.ChecksumCRC32,
    checksumType: out.ChecksumType,
  };
}

const scenarios = {
  // PutObject (string and Buffer), GetObject, HeadObject, GetObject with checksum mode,
  // ListObjectsV2 page by page, DeleteObjects, DeleteObject.
  async roundtrip() {
    const text = "hello from the AWS SDK for JavaScript v3 \u2713 \u00e9\u00e8";
    const binary = randomBytes(70_000);
    const putText = await client.send(new PutObjectCommand({
      Bucket, Key: "docs/hello.txt", Body: text,
      ContentType: "text/plain; charset=utf-8",
      Metadata: { origin: "js-sdk", purpose: "round-trip" },
    }));
    const putBinary = await client.send(new PutObjectCommand({
      Bucket, Key: "docs/data.bin", Body: binary,
      ContentType: "application/x-cargohold-test",
      Metadata: { "mixed-case-key": "Value With Spaces" },
    }));
    const putEmpty = await client.send(new PutObjectCommand({ Bucket, Key: "docs/empty", Body: "" }));
    const getText = await getBody("docs/hello.txt");
    const getBinary = await getBody("docs/data.bin");
    const head = await client.send(new HeadObjectCommand({ Bucket, Key: "docs/data.bin" }));
    const checksummed = await getBody("docs/data.bin", { ChecksumMode: "ENABLED" });
    const getEmpty = await getBody("docs/empty");
    // A ranged GET (the default client asks for checksums on every GET: one for the whole
    // object must not come back with a part of it, or the SDK fails its validation).
    const ranged = await client.send(new GetObjectCommand({ Bucket, Key: "docs/data.bin",
      Range: "bytes=1000-1999" }));
    const rangedBytes = Buffer.from(await ranged.Body.transformToByteArray());

    const listKeys = [
      "list/a b.txt", "list/c+d.txt", "list/\u00fcn\u00efc\u00f8d\u00e9/\u00e9t\u00e9.txt",
      "list/\u65e5\u672c\u8a9e \u30d5\u30a1\u30a4\u30eb", "list/100% sure?&x=y", "list/plain",
      "list/tilde~star*", "list/zz",
    ];
    for (const Key of listKeys) {
      await client.send(new PutObjectCommand({ Bucket, Key, Body: `body of ${Key}` }));
    }
    const pages = [];
    let ContinuationToken;
    do {
      const page = await client.send(new ListObjectsV2Command({
        Bucket, Prefix: "list/", MaxKeys: 3, ContinuationToken,
      }));
      pages.push({
        keys: (page.Contents ?? []).map((o) => o.Key),
        sizes: (page.Contents ?? []).map((o) => o.Size),
        keyCount: page.KeyCount,
        isTruncated: page.IsTruncated,
        hasNextToken: Boolean(page.NextContinuationToken),
      });
      ContinuationToken = page.NextContinuationToken;
    } while (ContinuationToken && pages.length < 20);

    const deleteKeys = listKeys.slice(0, 5);
    const deleted = await client.send(new DeleteObjectsCommand({
      Bucket, Delete: { Objects: deleteKeys.map((Key) => ({ Key })), Quiet: false },
    }));
    const deleteOne = await client.send(new DeleteObjectCommand({ Bucket, Key: "docs/hello.txt" }));
    const after = await client.send(new ListObjectsV2Command({ Bucket }));

    return {
      text, textSha256: sha256(Buffer.from(text, "utf8")),
      binarySha256: sha256(binary), binaryLength: binary.length, binaryCrc32: crc32b64(binary),
      putText: { etag: putText.ETag, checksumCRC32: putText.ChecksumCRC32,
        status: putText.$metadata.httpStatusCode },
      putBinary: { etag: putBinary.ETag, checksumCRC32: putBinary.ChecksumCRC32,
        status: putBinary.$metadata.httpStatusCode },
      putEmpty: { etag: putEmpty.ETag, checksumCRC32: putEmpty.ChecksumCRC32 },
      getText, getBinary, getEmpty,
      ranged: { status: ranged.$metadata.httpStatusCode, contentRange: ranged.ContentRange,
        sha256: sha256(rangedBytes), expectedSha256: sha256(binary.subarray(1000, 2000)),
        checksumCRC32: ranged.ChecksumCRC32 },
      head: { etag: head.ETag, contentLength: head.ContentLength, contentType: head.ContentType,
        metadata: head.Metadata, lastModified: head.LastModified?.toISOString() },
      checksummed,
      listKeys, pages,
      deleteKeys,
      deleted: (deleted.Deleted ?? []).map((d) => d.Key),
      deleteErrors: deleted.Errors ?? [],
      deleteOneStatus: deleteOne.$metadata.httpStatusCode,
      remaining: (after.Contents ?? []).map((o) => o.Key),
      requests,
    };
  },

  // lib-storage's Upload of a file stream: multipart, 5 MiB parts, default checksums; the
  // object read back through the SDK; a PutObject of a file stream (aws-chunked).
  async upload() {
    const path = env("CH_FILE");
    const Key = "uploads/big file.bin";
    const upload = new Upload({
      client,
      params: { Bucket, Key, Body: createReadStream(path), ContentType: "application/octet-stream" },
      partSize: 5 * 1024 * 1024,
      queueSize: 2,
    });
    const progress = [];
    upload.on("httpUploadProgress", (p) => progress.push(p.loaded));
    const out = await upload.done();
    // Read it back through the SDK (a composite checksum: the SDK skips its validation).
    const back = await client.send(new GetObjectCommand({ Bucket, Key }));
    const digest = createHash("sha256");
    for await (const chunk of back.Body) digest.update(chunk);

    // PutObject of a file stream: the SDK sends it aws-chunked with a CRC32 trailer.
    const small = env("CH_SMALL_FILE");
    const streamed = await client.send(new PutObjectCommand({
      Bucket, Key: "uploads/streamed.bin", Body: createReadStream(small),
    }));
    return {
      key: Key,
      size: statSync(path).size,
      etag: out.ETag,
      checksumCRC32: out.ChecksumCRC32,
      checksumType: out.ChecksumType,
      location: out.Location,
      status: out.$metadata?.httpStatusCode,
      progressEvents: progress.length,
      lastLoaded: progress.at(-1),
      download: { sha256: digest.digest("hex"), contentLength: back.ContentLength, etag: back.ETag,
        checksumCRC32: back.ChecksumCRC32, checksumType: back.ChecksumType },
      streamed: { key: "uploads/streamed.bin", size: statSync(small).size, etag: streamed.ETag,
        checksumCRC32: streamed.ChecksumCRC32, status: streamed.$metadata.httpStatusCode },
      requests,
    };
  },

  // Presigned URLs (default settings) used with plain fetch.
  async presign() {
    const body = Buffer.from(`uploaded through a presigned URL ${randomBytes(8).toString("hex")}\n`);
    const putUrl = await getSignedUrl(client, new PutObjectCommand({ Bucket, Key: "presigned.txt" }),
      { expiresIn: 300 });
    const put = await fetch(putUrl, { method: "PUT", body });
    const putText = await put.text();

    const getUrl = await getSignedUrl(client, new GetObjectCommand({ Bucket, Key: "presigned.txt" }),
      { expiresIn: 300 });
    const get = await fetch(getUrl);
    const got = Buffer.from(await get.arrayBuffer());

    // Metadata and Tagging of a presigned PUT: the SDK hoists them into the query
    // (x-amz-meta-*, x-amz-tagging) and the uploader sends no such headers.
    const metaUrl = await getSignedUrl(client, new PutObjectCommand({
      Bucket, Key: "presigned-meta.txt", Metadata: { color: "blue", "two-words": "a b" },
      Tagging: "team=storage&stage=test",
    }), { expiresIn: 300 });
    const metaPut = await fetch(metaUrl, { method: "PUT", body });
    const metaPutText = await metaPut.text();
    const metaHead = await client.send(new HeadObjectCommand({ Bucket, Key: "presigned-meta.txt" }));

    // A presigned CopyObject: the SDK hoists x-amz-copy-source (and the directive and
    // metadata) into the query, and the PUT of that URL carries no body.
    const copyUrl = await getSignedUrl(client, new CopyObjectCommand({
      Bucket, Key: "presigned-copy.txt", CopySource: `${Bucket}/presigned.txt`,
      MetadataDirective: "REPLACE", Metadata: { copied: "by-url" },
    }), { expiresIn: 300 });
    const copyPut = await fetch(copyUrl, { method: "PUT" });
    const copyPutText = await copyPut.text();

    const tamper = (url) => {
      const parsed = new URL(url);
      const signature = parsed.searchParams.get("X-Amz-Signature");
      const flipped = (signature[0] === "0" ? "1" : "0") + signature.slice(1);
      parsed.searchParams.set("X-Amz-Signature", flipped);
      return parsed.toString();
    };
    const badGet = await fetch(tamper(getUrl));
    const badGetText = await badGet.text();
    const badPutUrl = await getSignedUrl(client,
      new PutObjectCommand({ Bucket, Key: "tampered.txt" }), { expiresIn: 300 });
    const badPut = await fetch(tamper(badPutUrl), { method: "PUT", body });
    const badPutText = await badPut.text();

    return {
      bodySha256: sha256(body), bodyLength: body.length,
      putQuery: Object.fromEntries(new URL(putUrl).searchParams),
      put: { status: put.status, etag: put.headers.get("etag"), text: putText },
      getQuery: Object.fromEntries(new URL(getUrl).searchParams),
      get: { status: get.status, sha256: sha256(got), length: got.length,
        etag: get.headers.get("etag") },
      metaQuery: Object.fromEntries(new URL(metaUrl).searchParams),
      metaPut: { status: metaPut.status, text: metaPutText },
      metaHead: { metadata: metaHead.Metadata, tagCount: metaHead.TagCount },
      copyQuery: Object.fromEntries(new URL(copyUrl).searchParams),
      copyPut: { status: copyPut.status, text: copyPutText },
      badGet: { status: badGet.status, text: badGetText },
      badPut: { status: badPut.status, text: badPutText },
    };
  },

  // Presigned PUTs with a canned ACL, which the SDK hoists into the query (x-amz-acl): the
  // bucket's policy (set by the test) denies public-read under guarded/.
  async presign_acl() {
    const results = {};
    for (const [Key, ACL] of [["guarded/public", "public-read"], ["guarded/private", "private"],
      ["open/public", "public-read"]]) {
      const url = await getSignedUrl(client, new PutObjectCommand({ Bucket, Key, ACL }),
        { expiresIn: 300 });
      const put = await fetch(url, { method: "PUT", body: `body of ${Key}` });
      const text = await put.text();
      const anonymous = await fetch(`${env("CH_ENDPOINT")}/${Bucket}/${Key}`);
      await anonymous.arrayBuffer();
      results[Key] = { acl: new URL(url).searchParams.get("x-amz-acl"), status: put.status,
        code: /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? null, anonymousGet: anonymous.status };
    }
    return results;
  },

  // CopyObject with REPLACE, conditional GETs, and the errors the SDK surfaces.
  async copy() {
    const put = await client.send(new PutObjectCommand({
      Bucket, Key: "source.txt", Body: "the source object\n", ContentType: "text/plain",
      Metadata: { generation: "one" },
    }));
    const copy = await client.send(new CopyObjectCommand({
      Bucket, Key: "copy of source.txt", CopySource: `${Bucket}/source.txt`,
      MetadataDirective: "REPLACE", ContentType: "text/x-copied",
      Metadata: { generation: "two", copied: "yes" },
    }));
    const copied = await getBody("copy of source.txt");
    const notModified = await expectError(client.send(new GetObjectCommand({
      Bucket, Key: "copy of source.txt", IfNoneMatch: copy.CopyObjectResult.ETag,
    })));
    const failedPrecondition = await expectError(client.send(new GetObjectCommand({
      Bucket, Key: "copy of source.txt", IfMatch: '"0123456789abcdef0123456789abcdef"',
    })));
    const matched = await getBody("copy of source.txt", { IfMatch: copy.CopyObjectResult.ETag });
    const missing = await expectError(client.send(new GetObjectCommand({
      Bucket, Key: "no such key.txt",
    })));
    const missingHead = await expectError(client.send(new HeadObjectCommand({
      Bucket, Key: "no such key.txt",
    })));
    const missingBucket = await expectError(client.send(new GetObjectCommand({
      Bucket: `${Bucket}-missing`, Key: "x",
    })));
    return {
      put: { etag: put.ETag },
      copy: { etag: copy.CopyObjectResult?.ETag,
        lastModified: copy.CopyObjectResult?.LastModified?.toISOString(),
        checksumCRC32: copy.CopyObjectResult?.ChecksumCRC32,
        status: copy.$metadata.httpStatusCode },
      copied, notModified, failedPrecondition, matched, missing, missingHead, missingBucket,
      requests,
    };
  },
};

const name = process.argv[2];
if (!(name in scenarios)) {
  console.error(`usage: node s3client.mjs {${Object.keys(scenarios).join(",")}}`);
  process.exit(2);
}
try {
  const result = await scenarios[name]();
  process.stdout.write(`${JSON.stringify(result)}\n`);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ error: failure(err), $metadata: err?.$metadata,
    requests })}\n`);
  console.error(err);
  process.exit(1);
} finally {
  client.destroy();
}
