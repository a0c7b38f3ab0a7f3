//! KMIP tags and enumeration values used by this server (KMIP 1.4 and 2.0 specifications,
//! section 9.1.3).
#![allow(missing_docs)]

pub const ACTIVATION_DATE: u32 = 0x420001;
pub const ATTRIBUTE: u32 = 0x420008;
pub const ATTRIBUTE_INDEX: u32 = 0x420009;
pub const ATTRIBUTE_NAME: u32 = 0x42000A;
pub const ATTRIBUTE_VALUE: u32 = 0x42000B;
pub const BATCH_COUNT: u32 = 0x42000D;
pub const BATCH_ERROR_CONTINUATION_OPTION: u32 = 0x42000E;
pub const BATCH_ITEM: u32 = 0x42000F;
pub const BATCH_ORDER_OPTION: u32 = 0x420010;
pub const COMPROMISE_DATE: u32 = 0x420020;
pub const COMPROMISE_OCCURRENCE_DATE: u32 = 0x420021;
pub const CONTACT_INFORMATION: u32 = 0x420022;
pub const CRYPTOGRAPHIC_ALGORITHM: u32 = 0x420028;
pub const CRYPTOGRAPHIC_LENGTH: u32 = 0x42002A;
pub const CRYPTOGRAPHIC_USAGE_MASK: u32 = 0x42002C;
pub const DEACTIVATION_DATE: u32 = 0x42002F;
pub const DESTROY_DATE: u32 = 0x420033;
pub const DIGEST: u32 = 0x420034;
pub const DIGEST_VALUE: u32 = 0x420035;
pub const HASHING_ALGORITHM: u32 = 0x420038;
pub const INITIAL_DATE: u32 = 0x420039;
pub const KEY_BLOCK: u32 = 0x420040;
pub const KEY_FORMAT_TYPE: u32 = 0x420042;
pub const KEY_MATERIAL: u32 = 0x420043;
pub const KEY_VALUE: u32 = 0x420045;
pub const KEY_WRAPPING_SPECIFICATION: u32 = 0x420047;
pub const LAST_CHANGE_DATE: u32 = 0x420048;
pub const MAXIMUM_ITEMS: u32 = 0x42004F;
pub const NAME: u32 = 0x420053;
pub const NAME_TYPE: u32 = 0x420054;
pub const NAME_VALUE: u32 = 0x420055;
pub const OBJECT_GROUP: u32 = 0x420056;
pub const OBJECT_TYPE: u32 = 0x420057;
pub const OPERATION: u32 = 0x42005C;
pub const PROTOCOL_VERSION: u32 = 0x420069;
pub const PROTOCOL_VERSION_MAJOR: u32 = 0x42006A;
pub const PROTOCOL_VERSION_MINOR: u32 = 0x42006B;
pub const QUERY_FUNCTION: u32 = 0x420074;
pub const REQUEST_HEADER: u32 = 0x420077;
pub const REQUEST_MESSAGE: u32 = 0x420078;
pub const REQUEST_PAYLOAD: u32 = 0x420079;
pub const RESPONSE_HEADER: u32 = 0x42007A;
pub const RESPONSE_MESSAGE: u32 = 0x42007B;
pub const RESPONSE_PAYLOAD: u32 = 0x42007C;
pub const RESULT_MESSAGE: u32 = 0x42007D;
pub const RESULT_REASON: u32 = 0x42007E;
pub const RESULT_STATUS: u32 = 0x42007F;
pub const REVOCATION_MESSAGE: u32 = 0x420080;
pub const REVOCATION_REASON: u32 = 0x420081;
pub const REVOCATION_REASON_CODE: u32 = 0x420082;
pub const SECRET_DATA: u32 = 0x420085;
pub const SECRET_DATA_TYPE: u32 = 0x420086;
pub const SERVER_INFORMATION: u32 = 0x420088;
pub const STATE: u32 = 0x42008D;
pub const SYMMETRIC_KEY: u32 = 0x42008F;
pub const TEMPLATE_ATTRIBUTE: u32 = 0x420091;
pub const TIME_STAMP: u32 = 0x420092;
pub const UNIQUE_BATCH_ITEM_ID: u32 = 0x420093;
pub const UNIQUE_IDENTIFIER: u32 = 0x420094;
pub const VENDOR_ATTRIBUTE: u32 = 0x42009C;
pub const VENDOR_IDENTIFICATION: u32 = 0x42009D;
pub const FRESH: u32 = 0x4200A8;
pub const OFFSET_ITEMS: u32 = 0x4200D4;
pub const LOCATED_ITEMS: u32 = 0x4200D5;
pub const ORIGINAL_CREATION_DATE: u32 = 0x4200BC;
pub const RNG_PARAMETERS: u32 = 0x4200D9;
pub const RNG_ALGORITHM: u32 = 0x4200DA;
pub const RANDOM_NUMBER_GENERATOR: u32 = 0x4200DE;
pub const SENSITIVE: u32 = 0x420120;
pub const ALWAYS_SENSITIVE: u32 = 0x420121;
pub const EXTRACTABLE: u32 = 0x420122;
pub const NEVER_EXTRACTABLE: u32 = 0x420123;
pub const ATTRIBUTES: u32 = 0x420125;
pub const ATTRIBUTE_REFERENCE: u32 = 0x42013B;
pub const CURRENT_ATTRIBUTE: u32 = 0x42013C;
pub const NEW_ATTRIBUTE: u32 = 0x42013D;

/// Operations (enumeration of tag 0x42005C).
pub mod op {
    pub const CREATE: u32 = 0x01;
    pub const REGISTER: u32 = 0x03;
    pub const LOCATE: u32 = 0x08;
    pub const GET: u32 = 0x0A;
    pub const GET_ATTRIBUTES: u32 = 0x0B;
    pub const GET_ATTRIBUTE_LIST: u32 = 0x0C;
    pub const ADD_ATTRIBUTE: u32 = 0x0D;
    pub const MODIFY_ATTRIBUTE: u32 = 0x0E;
    pub const DELETE_ATTRIBUTE: u32 = 0x0F;
    pub const ACTIVATE: u32 = 0x12;
    pub const REVOKE: u32 = 0x13;
    pub const DESTROY: u32 = 0x14;
    pub const QUERY: u32 = 0x18;
    pub const DISCOVER_VERSIONS: u32 = 0x1E;
    pub const SET_ATTRIBUTE: u32 = 0x31;
}

/// Result Status.
pub mod status {
    pub const SUCCESS: u32 = 0;
    pub const OPERATION_FAILED: u32 = 1;
}

/// Result Reason.
pub mod reason {
    pub const ITEM_NOT_FOUND: u32 = 0x01;
    pub const INVALID_MESSAGE: u32 = 0x04;
    pub const OPERATION_NOT_SUPPORTED: u32 = 0x05;
    pub const MISSING_DATA: u32 = 0x06;
    pub const INVALID_FIELD: u32 = 0x07;
    pub const FEATURE_NOT_SUPPORTED: u32 = 0x08;
    pub const ILLEGAL_OPERATION: u32 = 0x0B;
    pub const PERMISSION_DENIED: u32 = 0x0C;
    pub const KEY_FORMAT_TYPE_NOT_SUPPORTED: u32 = 0x10;
    pub const GENERAL_FAILURE: u32 = 0x100;
}

/// Object Type Symmetric Key.
pub const OBJECT_SYMMETRIC_KEY: u32 = 0x02;
/// Object Type Secret Data.
pub const OBJECT_SECRET_DATA: u32 = 0x07;
/// Cryptographic Algorithm AES.
pub const ALGORITHM_AES: u32 = 0x03;
/// Key Format Type Raw.
pub const KEY_FORMAT_RAW: u32 = 0x01;
/// Key Format Type Opaque (Secret Data).
pub const KEY_FORMAT_OPAQUE: u32 = 0x02;
/// Key Format Type Transparent Symmetric Key.
pub const KEY_FORMAT_TRANSPARENT_SYMMETRIC: u32 = 0x07;
/// Hashing Algorithm SHA-256.
pub const HASH_SHA256: u32 = 0x06;
/// Name Type Uninterpreted Text String.
pub const NAME_TYPE_TEXT: u32 = 0x01;
/// Secret Data Type Password.
pub const SECRET_PASSWORD: u32 = 0x01;
/// RNG Algorithm Unspecified.
pub const RNG_UNSPECIFIED: u32 = 0x01;
/// Revocation Reason Code Key Compromise.
pub const REVOKE_KEY_COMPROMISE: u32 = 0x02;

/// State.
pub mod state {
    pub const PRE_ACTIVE: u32 = 1;
    pub const ACTIVE: u32 = 2;
    pub const DEACTIVATED: u32 = 3;
    pub const COMPROMISED: u32 = 4;
}

/// Query Function.
pub mod query {
    pub const OPERATIONS: u32 = 1;
    pub const OBJECTS: u32 = 2;
    pub const SERVER_INFORMATION: u32 = 3;
}

/// The standard attributes this server keeps, by name and by their KMIP 2.0 tag.
pub const ATTRIBUTE_TAGS: &[(&str, u32)] = &[
    ("Unique Identifier", UNIQUE_IDENTIFIER),
    ("Name", NAME),
    ("Object Group", OBJECT_GROUP),
    ("Object Type", OBJECT_TYPE),
    ("Cryptographic Algorithm", CRYPTOGRAPHIC_ALGORITHM),
    ("Cryptographic Length", CRYPTOGRAPHIC_LENGTH),
    ("Cryptographic Usage Mask", CRYPTOGRAPHIC_USAGE_MASK),
    ("Digest", DIGEST),
    ("State", STATE),
    ("Initial Date", INITIAL_DATE),
    ("Activation Date", ACTIVATION_DATE),
    ("Deactivation Date", DEACTIVATION_DATE),
    ("Compromise Date", COMPROMISE_DATE),
    ("Compromise Occurrence Date", COMPROMISE_OCCURRENCE_DATE),
    ("Revocation Reason", REVOCATION_REASON),
    ("Last Change Date", LAST_CHANGE_DATE),
    ("Original Creation Date", ORIGINAL_CREATION_DATE),
    ("Contact Information", CONTACT_INFORMATION),
    ("Fresh", FRESH),
    ("Random Number Generator", RANDOM_NUMBER_GENERATOR),
    ("Sensitive", SENSITIVE),
    ("Always Sensitive", ALWAYS_SENSITIVE),
    ("Extractable", EXTRACTABLE),
    ("Never Extractable", NEVER_EXTRACTABLE),
];

/// The name of a standard attribute's 2.0 tag.
pub fn attribute_name_of_tag(tag: u32) -> Option<&'static str> {
    ATTRIBUTE_TAGS
        .iter()
        .find(|(_, t)| *t == tag)
        .map(|(n, _)| *n)
}

/// The 2.0 tag of a standard attribute.
pub fn attribute_tag_of_name(name: &str) -> Option<u32> {
    ATTRIBUTE_TAGS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}
