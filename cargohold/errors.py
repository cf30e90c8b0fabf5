"""Typed S3 errors.

Every failure a client can see is an :class:`S3Error` subclass that carries its S3 error
code and HTTP status; the HTTP layer renders it as S3 ``<Error>`` XML. Layers below HTTP
(auth, store, handlers) raise these and never build responses themselves.
"""

from __future__ import annotations


class S3Error(Exception):
    """An error with an S3 error code, an HTTP status and a human message."""

    code: str = "InternalError"
    status: int = 500
    default_message: str = "We encountered an internal error. Please try again."

    # Set when the write may have been committed after all (the metadata store's
    # connection was lost with its COMMIT in flight): whatever it points at must stay.
    outcome_unknown: bool = False

    def __init__(self, message: str | None = None, **fields: str) -> None:
        self.message = message or self.default_message
        # Extra XML elements S3 puts into some errors (e.g. BucketName, Key, ArgumentName).
        self.fields: dict[str, str] = dict(fields)
        # Extra response headers (e.g. x-amz-delete-marker on NoSuchKey later).
        self.headers: dict[str, str] = {}
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}: {self.message})"


def _error(name: str, code: str, status: int, message: str) -> type[S3Error]:
    cls = type(name, (S3Error,), {"code": code, "status": status, "default_message": message})
    return cls


# 400
BadDigest = _error("BadDigest", "BadDigest", 400,
                   "The Content-MD5 or checksum you specified did not match what we received.")
InvalidDigest = _error("InvalidDigest", "InvalidDigest", 400,
                       "The Content-MD5 you specified is not valid.")
XAmzContentSHA256Mismatch = _error(
    "XAmzContentSHA256Mismatch", "XAmzContentSHA256Mismatch", 400,
    "The provided 'x-amz-content-sha256' header does not match what was computed.")
InvalidArgument = _error("InvalidArgument", "InvalidArgument", 400, "Invalid Argument")
InvalidRequest = _error("InvalidRequest", "InvalidRequest", 400, "Invalid Request")
InvalidBucketName = _error("InvalidBucketName", "InvalidBucketName", 400,
                           "The specified bucket is not valid.")
KeyTooLongError = _error("KeyTooLongError", "KeyTooLongError", 400, "Your key is too long")
MetadataTooLarge = _error("MetadataTooLarge", "MetadataTooLarge", 400,
                          "Your metadata headers exceed the maximum allowed metadata size.")
EntityTooLarge = _error("EntityTooLarge", "EntityTooLarge", 400,
                        "Your proposed upload exceeds the maximum allowed object size.")
EntityTooSmall = _error("EntityTooSmall", "EntityTooSmall", 400,
                        "Your proposed upload is smaller than the minimum allowed object size.")
MalformedXML = _error("MalformedXML", "MalformedXML", 400,
                      "The XML you provided was not well-formed or did not validate against "
                      "our published schema.")
IncompleteBody = _error("IncompleteBody", "IncompleteBody", 400,
                        "You did not provide the number of bytes specified by the "
                        "Content-Length HTTP header.")
InvalidLocationConstraint = _error("InvalidLocationConstraint", "InvalidLocationConstraint", 400,
                                   "The specified location-constraint is not valid.")
IllegalLocationConstraintException = _error(
    "IllegalLocationConstraintException", "IllegalLocationConstraintException", 400,
    "The location constraint is incompatible with the region of this endpoint.")
AuthorizationHeaderMalformed = _error("AuthorizationHeaderMalformed",
                                      "AuthorizationHeaderMalformed", 400,
                                      "The authorization header is malformed.")
AuthorizationQueryParametersError = _error("AuthorizationQueryParametersError",
                                           "AuthorizationQueryParametersError", 400,
                                           "Error parsing the query-string authentication "
                                           "parameters.")
MissingSecurityHeader = _error("MissingSecurityHeader", "MissingSecurityHeader", 400,
                               "Your request is missing a required header.")
InvalidEncodingType = _error("InvalidArgument", "InvalidArgument", 400,
                             "Invalid Encoding Method specified in Request")
TooManyBuckets = _error("TooManyBuckets", "TooManyBuckets", 400,
                        "You have attempted to create more buckets than allowed.")
InvalidChunkSizeError = _error("InvalidChunkSizeError", "InvalidChunkSizeError", 400,
                               "Only the last chunk is allowed to have a size less than 8192 "
                               "bytes.")
InvalidTag = _error("InvalidTag", "InvalidTag", 400, "The tag provided was not a valid tag.")
InvalidPart = _error("InvalidPart", "InvalidPart", 400,
                     "One or more of the specified parts could not be found.")
InvalidPartOrder = _error("InvalidPartOrder", "InvalidPartOrder", 400,
                          "The list of parts was not in ascending order.")
InvalidStorageClass = _error("InvalidStorageClass", "InvalidStorageClass", 400,
                             "The storage class you specified is not valid.")
InvalidURI = _error("InvalidURI", "InvalidURI", 400, "Couldn't parse the specified URI.")
UnexpectedContent = _error("UnexpectedContent", "UnexpectedContent", 400,
                           "This request does not support content.")
# 403
AccessDenied = _error("AccessDenied", "AccessDenied", 403, "Access Denied")
InvalidAccessKeyId = _error("InvalidAccessKeyId", "InvalidAccessKeyId", 403,
                            "The AWS Access Key Id you provided does not exist in our records.")
SignatureDoesNotMatch = _error("SignatureDoesNotMatch", "SignatureDoesNotMatch", 403,
                               "The request signature we calculated does not match the "
                               "signature you provided. Check your key and signing method.")
RequestTimeTooSkewed = _error("RequestTimeTooSkewed", "RequestTimeTooSkewed", 403,
                              "The difference between the request time and the current time "
                              "is too large.")
# 404
NoSuchBucket = _error("NoSuchBucket", "NoSuchBucket", 404, "The specified bucket does not exist.")
NoSuchKey = _error("NoSuchKey", "NoSuchKey", 404, "The specified key does not exist.")
NoSuchVersion = _error("NoSuchVersion", "NoSuchVersion", 404,
                       "The specified version does not exist.")
NoSuchUpload = _error("NoSuchUpload", "NoSuchUpload", 404,
                      "The specified multipart upload does not exist.")
# 405 / 409 / 411 / 412 / 416
MethodNotAllowed = _error("MethodNotAllowed", "MethodNotAllowed", 405,
                          "The specified method is not allowed against this resource.")
BucketAlreadyExists = _error("BucketAlreadyExists", "BucketAlreadyExists", 409,
                             "The requested bucket name is not available. The bucket namespace "
                             "is shared by all users of the system. Please select a different "
                             "name and try again.")
BucketAlreadyOwnedByYou = _error("BucketAlreadyOwnedByYou", "BucketAlreadyOwnedByYou", 409,
                                 "Your previous request to create the named bucket succeeded "
                                 "and you already own it.")
BucketNotEmpty = _error("BucketNotEmpty", "BucketNotEmpty", 409,
                        "The bucket you tried to delete is not empty.")
ConditionalRequestConflict = _error("ConditionalRequestConflict", "ConditionalRequestConflict",
                                    409, "A conflicting operation occurred.")
MissingContentLength = _error("MissingContentLength", "MissingContentLength", 411,
                              "You must provide the Content-Length HTTP header.")
PreconditionFailed = _error("PreconditionFailed", "PreconditionFailed", 412,
                            "At least one of the pre-conditions you specified did not hold")
InvalidRange = _error("InvalidRange", "InvalidRange", 416,
                      "The requested range is not satisfiable")
InvalidPartNumber = _error("InvalidPartNumber", "InvalidPartNumber", 416,
                          "The requested partnumber is not satisfiable")
# 5xx
InternalError = _error("InternalError", "InternalError", 500,
                       "We encountered an internal error. Please try again.")
NotImplementedError_ = _error("NotImplemented", "NotImplemented", 501,
                              "A header or query you provided implies functionality that is "
                              "not implemented.")
SlowDown = _error("SlowDown", "SlowDown", 503, "Please reduce your request rate.")
ServiceUnavailable = _error("ServiceUnavailable", "ServiceUnavailable", 503,
                            "Service is unable to handle request.")
# Not an AWS code (S3 never runs out of space): the file system or the metadata database
# is full. 507 rather than 500/503, which SDKs retry: a full disk stays full.
InsufficientStorage = _error("InsufficientStorage", "InsufficientStorage", 507,
                             "The server has no space left to store this request's data. "
                             "Delete objects or free disk space, then try again.")
# CORS (cargohold/cors.py). BadRequest is S3's answer to an OPTIONS without Origin;
# AccessForbidden to a refused preflight (it carries Method and ResourceType elements).
BadRequest = _error("BadRequest", "BadRequest", 400, "Bad Request")
AccessForbidden = _error("AccessForbidden", "AccessForbidden", 403,
                         "CORSResponse: This CORS request is not allowed. This is usually "
                         "because the evalution of Origin, request method / "
                         "Access-Control-Request-Method or Access-Control-Request-Headers are "
                         "not whitelisted by the resource's CORS spec.")
NoSuchCORSConfiguration = _error("NoSuchCORSConfiguration", "NoSuchCORSConfiguration", 404,
                                 "The CORS configuration does not exist")
# Bucket policies
MalformedPolicy = _error("MalformedPolicy", "MalformedPolicy", 400, "Policy is not valid.")
NoSuchBucketPolicy = _error("NoSuchBucketPolicy", "NoSuchBucketPolicy", 404,
                            "The bucket policy does not exist")
# ACLs (cargohold/acl.py). S3's MalformedACLError message has no final period, unlike
# MalformedXML's (as AWS answers it, recorded in LocalStack's validated snapshots).
MalformedACLError = _error("MalformedACLError", "MalformedACLError", 400,
                           "The XML you provided was not well-formed or did not validate "
                           "against our published schema")
UnresolvableGrantByEmailAddress = _error("UnresolvableGrantByEmailAddress",
                                         "UnresolvableGrantByEmailAddress", 400,
                                         "The e-mail address you provided does not match any "
                                         "account on record.")
# Browser uploads (POST Object, cargohold/postform.py and cargohold/auth/postpolicy.py). The
# code S3 sends for an oversized form head lacks the "Error" its documentation gives it, and
# its message is verbatim, typos included (as captured from S3 in several issue trackers).
MalformedPOSTRequest = _error("MalformedPOSTRequest", "MalformedPOSTRequest", 400,
                              "The body of your POST request is not well-formed "
                              "multipart/form-data.")
MaxPostPreDataLengthExceeded = _error("MaxPostPreDataLengthExceeded",
                                      "MaxPostPreDataLengthExceeded", 400,
                                      "Your POST request fields preceeding the upload file was "
                                      "too large.")
InvalidPolicyDocument = _error("InvalidPolicyDocument", "InvalidPolicyDocument", 400,
                               "The content of the form does not meet the conditions "
                               "specified in the policy document.")
# SSE-C (cargohold/sse/). Codes and messages as AWS answers them (LocalStack's AWS-validated
# captures; the over-HTTP refusal as MinIO words it, AWS's own text is not on record).
InvalidEncryptionAlgorithmError = _error("InvalidEncryptionAlgorithmError",
                                         "InvalidEncryptionAlgorithmError", 400,
                                         "The Encryption request you specified is not valid. "
                                         "Supported value: AES256.")
InsecureSseCustomerRequest = _error("InsecureSseCustomerRequest", "InvalidRequest", 400,
                                    "Requests specifying Server Side Encryption with Customer "
                                    "provided keys must be made over a secure connection.")
SseCustomerKeyRequired = _error("SseCustomerKeyRequired", "InvalidRequest", 400,
                                "The object was stored using a form of Server Side Encryption. "
                                "The correct parameters must be provided to retrieve the "
                                "object.")
SseCustomerKeyNotApplicable = _error("SseCustomerKeyNotApplicable", "InvalidRequest", 400,
                                     "The encryption parameters are not applicable to this "
                                     "object.")
SseCustomerKeyIncorrect = _error("SseCustomerKeyIncorrect", "AccessDenied", 403,
                                 "Requests specifying Server Side Encryption with Customer "
                                 "provided keys must provide the correct secret key.")
SseMultipartEncrypted = _error("SseMultipartEncrypted", "InvalidRequest", 400,
                               "The multipart upload initiate requested encryption. Subsequent "
                               "part requests must include the appropriate encryption "
                               "parameters.")
SseCustomerParametersMismatch = _error("SseCustomerParametersMismatch", "InvalidRequest", 400,
                                       "The provided encryption parameters did not match the "
                                       "ones used originally.")
# Static websites (cargohold/website.py)
NoSuchWebsiteConfiguration = _error("NoSuchWebsiteConfiguration", "NoSuchWebsiteConfiguration",
                                    404, "The specified bucket does not have a website "
                                    "configuration")
# Access logs (cargohold/accesslog.py). S3 answers every refused target with this code.
InvalidTargetBucketForLogging = _error("InvalidTargetBucketForLogging",
                                       "InvalidTargetBucketForLogging", 400,
                                       "The target bucket for logging does not exist, is not "
                                       "owned by you, or does not have the appropriate grants "
                                       "for the log-delivery group.")
InvalidRedirectLocation = _error("InvalidRedirectLocation", "InvalidRedirectLocation", 400,
                                 "The website redirect location is not valid.")
# Bucket lifecycle (cargohold/lifecycle.py)
NoSuchLifecycleConfiguration = _error("NoSuchLifecycleConfiguration",
                                      "NoSuchLifecycleConfiguration", 404,
                                      "The lifecycle configuration does not exist")
