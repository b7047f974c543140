"""Checksums of numbered migrations as stores applied them, before the functions and views they
defined or restated moved to the repeatable files (``mfs.storage.repeatable``).

Per file: the normalised checksum of its current text, then every checksum a store may have
recorded for its text as released before the move (the normalised one, and the SHA-256 of each
committed version's bytes with that SQL, for stores older than normalised checksums). Such a
record is accepted while the file is still that current text, and replaced by it on the next
migrate. The objects the old text created are
the repeatable files' now: they are re-created from those files on the same migrate.
"""

from __future__ import annotations

EDITED: dict[str, tuple[str, ...]] = {
    "032_features_1d.timescale.sql": (
        "a7af75cbe9031871541a1de7ec9d7e73ea248db6ff1a9ca1a6f0c6b6aeef4e10",
        "5fc723497b85f0977970b1b6a5c3b0a650e4731a271008baa8c87c429f45f9a1",
        "7eb8d363347f9ad28263d8d8c86222c0e7e0a2ab62ea93b0fcb82489011e83b5",
    ),
    "035_serving_speedups.sql": (
        "364dbefe2d0442f055ad77f457c244b55276f3840bf59d7f6d7763ca2aae474a",
        "40aff836a46663105fbd81fdda1376b7e40827577a2fa7e02524806a2fe934c3",
        "87c21927fa518b329631d454510ccc5313b276b67c4188aea18403956ab1f63c",
    ),
    "041_policy_check.timescale.sql": (
        "c7aa3e356dd5989517c25848dfd49b81f6878ad1297e13c7140c5973d26cce0c",
        "9e838090250be36772f75098e0daac7488793720218fc5161d686098607ba501",
        "cbb22e053aec19a02f336cd56fbc17bf02847231ff3d4b1eb8f7296a73bc2f97",
    ),
    "042_current_and_emptied_buckets.timescale.sql": (
        "bcb128a29d8f3ca4b5f262543c39996041d2310583a7b045efd0752716759def",
        "cb09f1d94284a414860bb995cbf1093396b9be84822ffe87b922970fa8fc05b1",
        "d7c9e3c417096af9bac811360bd471047d77ad70106dad0c99d6316709b0ad2a",
    ),
    "051_asof_functions.sql": (
        "9dad30e033743e1a3ab2afc183d59d2f5d625ed95244d10bb730373b8ca6e030",
        "2e20996cf85c2199e904393b48fb7e6194f7e97dac4313c20b442a6f7e21691a",
        "ddbebfd9bc35152431a830b4bf3537d9c6a980e223cf3324173a6c9b6c70caa3",
    ),
    "052_revision_policies.timescale.sql": (
        "3cfc1201f74beb9fa0b341a591c20ed3d24ea9a6324f3fa2d5fc0fcfb3b436b6",
        "550042ae629a8b14d3a6a856aef888c3aa4ab1cd32a5a3429e3f96b1a74a5a4c",
        "8e629281b98e1b867257592c75e8b48207b82ef23307c24c886c89d27cab29bd",
    ),
    "054_asof_fixes.sql": (
        "cdc3fe79ddbc14d37eb50298d3f70992637a2a079a18e62fc9939239e74203e4",
        "bdea5dbc4fecf9019a12734b1fd1e16f818c73da2c77569a455819037cfd96c6",
        "eb40b699ceda8aa2e801d45a7155e1f0a5d0bde3cecf67f83573c643af927fd1",
    ),
    "055_asof_walk.sql": (
        "2de3323b65dc6f475ef18004708a7dd36216ad3d19d05e38d3d50ba5f487baf7",
        "131f8f32fe4847e3c388204f72f889e9b5568720a2363a065b0af2afafec6adc",
        "aae3e09cf386debea44bc11f0405c78133b8fdfbd1a0245a95ddfaeed559754e",
    ),
    "056_asof_first_known.sql": (
        "2de3323b65dc6f475ef18004708a7dd36216ad3d19d05e38d3d50ba5f487baf7",
        "128522029870adfe8528d11d873729afb28c03af5f53b16e0dc7019956194337",
        "c1974af60b03bcf372176bff186857a8f774cbdb84717fe1c64c762a98a6f6dc",
    ),
    "060_feature_registry.sql": (
        "3f44af7bbbab4c24d51989ad65ce054bcf51d803dfd0402eab667f60a823629e",
        "153c06aedef9f86eea1f5d97548cb17a6b9e0ccfd49f22705f7124de5bb0c5b2",
        "8daaaa1411d0d213fb146e9883923bb5716c8e2dcd167c4c39dc699442832ef9",
    ),
    "061_features_1d_last.apache.sql": (
        "a7549ccdea05aeb5e762c0bbd1b5f1fa9ab6449fa2d545ed2763c519ce57a48a",
        "698cb39e64269c00e14f3431c9da9c851cc1cfc1964a2a2c19d00d63b7669568",
        "7dd329666dd11038fe5a7348b03ab2461b09b65649af5bf0f38caf52d996c6f9",
    ),
    "061_features_1d_last.timescale.sql": (
        "30e421e6c9c3089339cc198038dacabeb043b87174bd2d37dde283d5fa7771f4",
        "9ff61538f573e5143b00e922eadcbd0f401940681f73aa305b51392341e069ee",
        "f45876a627a2a8d628fd86a9e03097e80dc7751e20a33d83c4f385be1cfe24cc",
    ),
    "070_features_latest.sql": (
        "92335aa1572d109b1b551210f6cbe60f2cea490d9793935fd55fa08e78274880",
        "311b2711df7f498143e2bccb2a4615611094f61db901e3ad78f113250153cdb0",
        "814f0154ed8ce51d795eee90329b02c68dda0cdeec92212f8902660bc6ba2dd1",
    ),
    "073_rollups_per_range.apache.sql": (
        "a1d562002705232aecec84e5c4ca2466c321dacca4352d52465d904422ddd44e",
        "17658ac2522319b77bf8c6683a271b10ce6e89da1767b1a7aaeed75b3a0363c5",
        "f07b44ca8ac4cebb8ef386d3f9a5692d40147edfbfbdc986fb14946b83cddcb5",
    ),
    "074_latest_packed.sql": (
        "092ebbbcee7c06e12349f1b9a3dc9b11262e0b1efa9c2253bb03381a6fea954a",
        "a299ef6ee08ed7438039578c6279ebcb54604df9f037b1f9c7a33637f634480c",
        "ac4745ea7a6006164dd556dd3b12ca44eb16ec3610c204bd880d0c51271b662b",
    ),
    "091_feature_stats_policies.timescale.sql": (
        "7ad85062dc924963ffa1a2c698ca69444befc2059024cc7900e5934793448475",
        "701c82aeba3ad9501bd6ca679afb86e33d387352d4e686e543a34e6e8296180a",
        "ab9972266719e8e48fd67a7ace99705a09b892b71a88ed3331191d1f1166dcf9",
    ),
    "100_latest_complete.sql": (
        "cd0616ed0ed1cd0e47f7e4c52b5440388b64221f52b387d6251ec4b031f379f6",
        "1eb7aa5d581ff75b7db518a88eaed1180ab7bdb90bf67f1e13c94768bae3a362",
        "4f02c55e272aa753972935aa3193153ec24f36403eeee708ebc278ecb7fca9de",
    ),
    "102_ohlcv_session_columns.apache.sql": (
        "e615fc63b2b9fcc9d64ffed2ae891b9253dba45792c84797106b853705fbc44e",
        "74d7706b99eb1cc108070f520df058233d814580b61e188a6722129d50f71d53",
        "8d1fd6ae57a5fcad0811481cbe765ec169aa339bb113901a401b01b1fc45f574",
    ),
    "102_ohlcv_session_columns.timescale.sql": (
        "eab9f5b185fea1bfc2485d7d3f3520cfd089aff51a2352547e73b1dd983f4b72",
        "2acecd1676f6e492cbd80d1e23cc769b16373abd4ed4c5c66f44e9885c67b315",
        "dfcb170a76c3a528edfb0bfb9b132d1e20663d1ab9cd9a465fe7d888775fb731",
    ),
    "103_session_partial_inline.apache.sql": (
        "ce816dde50e5922fe6454c7ff5f72bdd36614b92b2661b3aea88b8f25624b8d4",
        "4cf3f718c3280cb660f892f302b08a7bd56e197699030780f83674c2f2194a67",
        "894a1cc7161ff737bfa669f3fd7e6b4e0907a8b40405d95964a564a8a73e397c",
    ),
    "103_session_partial_inline.timescale.sql": (
        "4fd77f67b9bbb29fef78aa404c5632bc644c34b658264a6dbeea8645739fe98c",
        "5baae1f7f72b0235b6fd6bcc60002835aa46d08d624e782e2b0df66f174e3908",
        "e6db5252ad5b6ef7693f4b351c6be573f5d62bfff05c5b95bd49ae5f5cdf52e3",
    ),
    "120_dashboard_views.sql": (
        "4992a453340ee0f1f30ec149c6f6acca114587157feea05ec3448127f739200d",
        "7d538f8a1d89e6e8cc8f958950a207503baa6ebc427a9135811bc4e5f0618474",
        "c1744f1b5897139e8deafec6ca746088412c27b438d97d7e17641a981709fd35",
    ),
}
EDITED_CHECKSUMS = {old: current for current, *olds in EDITED.values() for old in olds}
