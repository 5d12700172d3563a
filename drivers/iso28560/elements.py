"""The data elements of ISO 28560-1 by relative OID, and the type-of-usage classes.

The relative OID is the number ISO 28560-2 writes in a precursor; ISO 28560-3 uses the same
numbers for the same elements in its basic and extension blocks. ``NAMES`` gives each a
stable English key (the message catalogue has ``tag.field.<key>`` for a person).
"""

from __future__ import annotations

PRIMARY_ITEM_ID = 1
CONTENT_PARAMETER = 2
OWNER_INSTITUTION = 3
SET_INFORMATION = 4
TYPE_OF_USAGE = 5
SHELF_LOCATION = 6
ONIX_MEDIA_FORMAT = 7
MARC_MEDIA_FORMAT = 8
SUPPLIER_IDENTIFIER = 9
ORDER_NUMBER = 10
ILL_BORROWING_INSTITUTION = 11
ILL_BORROWING_TRANSACTION = 12
GS1_PRODUCT_IDENTIFIER = 13
ALTERNATIVE_UNIQUE_ITEM_ID = 14
LOCAL_DATA_A = 15
LOCAL_DATA_B = 16
TITLE = 17
PRODUCT_IDENTIFIER_LOCAL = 18
MEDIA_FORMAT_OTHER = 19
SUPPLY_CHAIN_STAGE = 20
SUPPLIER_INVOICE_NUMBER = 21
ALTERNATIVE_ITEM_ID = 22
ALTERNATIVE_OWNER_INSTITUTION = 23
SUBSIDIARY_OF_OWNER = 24
ALTERNATIVE_ILL_BORROWING_INSTITUTION = 25
LOCAL_DATA_C = 26

NAMES = {
    PRIMARY_ITEM_ID: "primary_item_id",
    CONTENT_PARAMETER: "content_parameter",
    OWNER_INSTITUTION: "owner_institution",
    SET_INFORMATION: "set_information",
    TYPE_OF_USAGE: "type_of_usage",
    SHELF_LOCATION: "shelf_location",
    ONIX_MEDIA_FORMAT: "onix_media_format",
    MARC_MEDIA_FORMAT: "marc_media_format",
    SUPPLIER_IDENTIFIER: "supplier_identifier",
    ORDER_NUMBER: "order_number",
    ILL_BORROWING_INSTITUTION: "ill_borrowing_institution",
    ILL_BORROWING_TRANSACTION: "ill_borrowing_transaction",
    GS1_PRODUCT_IDENTIFIER: "gs1_product_identifier",
    ALTERNATIVE_UNIQUE_ITEM_ID: "alternative_unique_item_id",
    LOCAL_DATA_A: "local_data_a",
    LOCAL_DATA_B: "local_data_b",
    TITLE: "title",
    PRODUCT_IDENTIFIER_LOCAL: "product_identifier_local",
    MEDIA_FORMAT_OTHER: "media_format_other",
    SUPPLY_CHAIN_STAGE: "supply_chain_stage",
    SUPPLIER_INVOICE_NUMBER: "supplier_invoice_number",
    ALTERNATIVE_ITEM_ID: "alternative_item_id",
    ALTERNATIVE_OWNER_INSTITUTION: "alternative_owner_institution",
    SUBSIDIARY_OF_OWNER: "subsidiary_of_owner",
    ALTERNATIVE_ILL_BORROWING_INSTITUTION: "alternative_ill_borrowing_institution",
    LOCAL_DATA_C: "local_data_c",
}

# Elements that ISO 28560-2 writes with the ISIL compaction under the application-defined
# code. 3 is confirmed by a real tag; 11 holds an ISIL as well and is treated alike.
ISIL_ELEMENTS = frozenset({OWNER_INSTITUTION, ILL_BORROWING_INSTITUTION})

# Type of usage, ISO 28560-1: the class (high nibble in part 2, the only nibble in part 3).
USAGE_CLASSES = {
    0: "acquisition",
    1: "circulation",
    2: "not_for_circulation",
    3: "local",
    4: "local",
    5: "future",
    6: "no_information",
    7: "discarded",
    8: "patron_card",
    9: "library_equipment",
}


def usage_class_name(code: int) -> str:
    """The English key of a type-of-usage class (0-15); unassigned classes are ``future``."""
    return USAGE_CLASSES.get(code, "future")


def name_of(oid: int) -> str:
    """The English key of relative OID ``oid``; ``oid_<n>`` for numbers the table lacks."""
    return NAMES.get(oid, f"oid_{oid}")
