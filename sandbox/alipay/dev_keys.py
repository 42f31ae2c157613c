"""Development key material for the Alipay emulator and `refunds dev`.

PUBLIC BY DESIGN: these keys sign nothing outside this repository's sandbox. The emulator
signs its answers and notifications with ALIPAY_PRIVATE_KEY (its "支付宝公钥" half is what a
dev tenant configures as alipay_public_key) and verifies the dev app's requests with
APP_PUBLIC_KEY. Generated once with `cryptography` (RSA 2048, PKCS#8 / SubjectPublicKeyInfo).
"""

from __future__ import annotations

from typing import Any

# A 16-digit app id, like the ones Alipay's console assigns.
DEV_APP_ID = "2021000000000001"
# The merchant (seller) id, 2088 followed by 12 digits, as Alipay's user ids are.
DEV_SELLER_ID = "2088000000000001"

APP_PRIVATE_KEY = """\
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDgz80iUQz2UUzR
xYVXohweOtT7586Kh5lYDOsxT1CeH4sm7knPajmK1F3nHFMa18rOQCu6PAzbc0v6
/9WA4wStoRn6k+YoZOYIjKnIq4y/ahMyWhz3p/mh6QjCbCxwzs16/+txwD85Wr7R
f8NyaiH8KBDwmohvtmxG4pqL54iPqB4EVoZOzn+Mh99+Rm19DS1PPGm0TCOyr4Nj
3ktU3I3PkKz362k13lmniBHTXi6nE7fv9CjkrWVFssSM5gf8uoLCZk17O3FUFXNo
L4g8IZDc/Ov/ZLW0+lNjpNwtndRehf8uxQJ1Ilyl5HFVjBlhJqiJJat1UGeld70k
3wdKN857AgMBAAECggEAAq64Fea9rtq9fetLcgY/K6UsEW1sq35+t+w/ijEWFyzt
LiO9wbnUwfFSxYUzAKj+hIODgg9hX+T6TR5sX8NVtPStKK5HGshJbmSvSfOyFD6h
yAIHQnVAp0vujNNZnGb7ULJpDsxqdLa+fCV4IY9epHGd8iEF679Tf20Ixw6WNJCZ
QXSUOtSRUQEVN6p1CCKqg3W+Nt7DqpbEi4yPJ1QaFqRN99vJ29EFCJ6Mlw5fCYt9
bQQW3+gAPKZkC/Hq8uF+xvNKSdWnN3Hm4BpgtnLJZz1FJD89lioJnQ+BX3tN9aJp
EWoQNHSanHj2xWJxu3reTxyuOK3XP4DcSvFQYIU8EQKBgQDwSk64HMy34QmCG2wI
CW4jOP+CS4OqTghvrcbhashTuNNjD+cFW3bxl9Sm5JMoES/PINi1ESFYT+UgW/hh
hp+RtAA+uIKgml8s1YqUevmZ48Tj1L40AmDgY4tzhbEgT7Ev6vlCgrrvrQcvixAV
BjV2bOUpOBRuxtIwZe2nbXhQ3wKBgQDvgm6zi3Gw5Pqw8liH9Vtjvmt/GzRUSQMF
27RRud9icE8YF+RmmfPlO7RUzRZKDOD5Av1e4FrmHjDuuHgpJW2MvIkB89iNlVXs
334OU/rWOni5wcStwm+eggZHmKTdp0M6srrZ92CHdrY4griKmZmH4vdlpAG5k1En
+06RrRRp5QKBgFpzvlo0DSQSxB+D7xC/bAQ6SoRjpLaRFT/k7H6iUbKiWoBp1g8A
NTAQdW41kOd+QL75oFnYjvLNcHTT6hXcNWkFlyoFDrciJT2dTMND3318bftNdCPj
2U/eaPodk2WUWiCtlRLiXzglrBTLhkxDwBBKQaFYiOiCU1EArYte+/GFAoGARqOg
hMHO0U5nhcKkS80YnC1wRPfAEk/KXXL0FtqMQNtA6Kk7SuuDHIvkXtJyDXsI60hv
dAkVpiMnaXDst637RnPgsLu7ld6Cji9IXW91XrO2IYs9t8XN5+EPexRRI7KOSISo
SVsFlE515ergBLjSqFpPfyHFBHenivQ6swpqJ+UCgYEA5LognKxGGfAnaMntaJaB
X+5+dU89xY7NWC+Ncsz3H3WcNPo+bKJ1MqCuSxz+n5RdAdRilq0ejPN+41TspbgT
ZhUjg0HWqTU4PjV5GIZVdTjdKOddjM/Rrv3HYyxJOCrK/j87/zj/VGfyamJ2RXFP
/Lv7YzRUwjJTFyCsw/OQvvI=
-----END PRIVATE KEY-----
"""

APP_PUBLIC_KEY = """\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA4M/NIlEM9lFM0cWFV6Ic
HjrU++fOioeZWAzrMU9Qnh+LJu5Jz2o5itRd5xxTGtfKzkArujwM23NL+v/VgOME
raEZ+pPmKGTmCIypyKuMv2oTMloc96f5oekIwmwscM7Nev/rccA/OVq+0X/Dcmoh
/CgQ8JqIb7ZsRuKai+eIj6geBFaGTs5/jIfffkZtfQ0tTzxptEwjsq+DY95LVNyN
z5Cs9+tpNd5Zp4gR014upxO37/Qo5K1lRbLEjOYH/LqCwmZNeztxVBVzaC+IPCGQ
3Pzr/2S1tPpTY6TcLZ3UXoX/LsUCdSJcpeRxVYwZYSaoiSWrdVBnpXe9JN8HSjfO
ewIDAQAB
-----END PUBLIC KEY-----
"""

ALIPAY_PRIVATE_KEY = """\
-----BEGIN PRIVATE KEY-----
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQC7wto+DLlDF2bq
eoCfJL+zNyfHuvjx3iORRuL+9q3ow+EhBN2mUXqOZfEOKjtvqlS/n17B2CALrLg7
rR4f60a0bV+M7tcFQkD95vmyB58Ileot57T+LumWurOUipQ2D+sIGhK0sWnlzdHp
D9tKcGOheozlSVTikeccuwbRlw0mhyjYYJOyzMDjp4RH0vgETUBTfi/n4H1y907y
RsGl2hdvMzxpipGkUPqybCOVaC6iNrfhgD/NtzeZtLGRx2e0q4jEHJ34YqsM129B
AKu/X4SK890ppj062hmbUsHPIDsiv9gSsqbPnDP3SAhJJoae68rwRnJlpBu3MwWC
ei+rrtOnAgMBAAECggEACbES9dKkpMdqSwkmvCWNSvFlDsS3wThU//83jASXUSVR
6L6TuFg1VMYDTYFgObEs7bU1aBkWp7Od0OAXPCY3VeyIBZd10YeBdk78At9XgKhz
At/rx5ZhUqPxeBCNJPCTvQJ827Harv99lHj6j0WXhvLIn182eqQgWKsjZ3couR0j
Qn/6LybPbAHZgOZyDkufgF0KjetK+ZXVnMxFRYyICI41U+SqeG2xC9XSaa4k8Zfe
mfpdFXk/hk12LOwZ+IZy+sqGy9i9gnhuYV8xJXQQ0/nTwlS+u172PMdSWRvjBqL+
lFHaieH19RYN+/8MOTF7adZz9In4U1bZRYBB8DYvqQKBgQDj8++/naFObAcR9/7m
8+9goi8x/68nXwR/4szT5ABM9SfbN3Vaqe4emU+ANPYCD0H6nSJ6gPPD0C3cmnDT
zlYHAX2JmuSaJ7joAkAbRX2A9Rzw9l8Pxrab6AAwiJh6I4tVjN+tzB5wBnjr+GNj
vCSTiRb/yLVeh48OVz4p3+U5rwKBgQDS3PTBiELTVYOZuGEBGm5CrZjiHJJ8vr0m
7FIn1vq0LvsHo0UNbLh9Qtt2UvIyPpDh5+e8gi2p+utH9wbzAKZxNPFFGQCxqm/U
FYDRgkEXrJf+It5cekdqmWlclbueppY0P/E0FhUazQArLpeOLS11opntXEXdfTIG
zrFgNMqbiQKBgQCd7BKNoovtA6RGS5QZtqeBP/sIXYWf9hDs9FhI961Jo5IQKjSw
MgfYxQex338LYDyqfhAz5IB8iQ4sxgYihtFMmzi4i0mSjrBoc56sBhFztNxvB5BG
IrnB+xGejhNskpFmHGmeQ0pW+/TsLbHVl7OTTqdTX15fdfSiz8guRIHO2wKBgQC1
hD+t2f6srhB7Y50dtgL0ozvYaYAwooFx4D1YzldChK7UBFiNFeo66jLByOV1Gybd
USTLwcRNbxLbAGubBBRDn6+SK9PNHUrm5xvdPqOKHak5vApu0VRpD2cDrGG2UPE8
SU7554iDabWbdqBAY+OeQDsBeU0rPXqzIXrPtqIzAQKBgQCkd5qYnQ6Mn2sw4SPP
gAZRqZxHG+jRzuT7+dhzZr45ezh4DEHP4y8DKHT7tXRZEfayTVWFx9bpxVQn76da
sjc9DvlQLgVtnN73ZWGQVxTLifZ7r5kSXJsR3r2oP8CHkDiteQXvUUo49cIRN0Ye
tOzf7eSb2Gh5rc6PSniszi1Xhg==
-----END PRIVATE KEY-----
"""

ALIPAY_PUBLIC_KEY = """\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu8LaPgy5Qxdm6nqAnyS/
szcnx7r48d4jkUbi/vat6MPhIQTdplF6jmXxDio7b6pUv59ewdggC6y4O60eH+tG
tG1fjO7XBUJA/eb5sgefCJXqLee0/i7plrqzlIqUNg/rCBoStLFp5c3R6Q/bSnBj
oXqM5UlU4pHnHLsG0ZcNJoco2GCTsszA46eER9L4BE1AU34v5+B9cvdO8kbBpdoX
bzM8aYqRpFD6smwjlWguoja34YA/zbc3mbSxkcdntKuIxByd+GKrDNdvQQCrv1+E
ivPdKaY9OtoZm1LBzyA7Ir/YErKmz5wz90gISSaGnuvK8EZyZaQbtzMFgnovq67T
pwIDAQAB
-----END PUBLIC KEY-----
"""


def dev_account(base_url: str) -> dict[str, Any]:
    """The Alipay account settings a dev tenant configures to refund through the emulator
    at `base_url` (what `services.payout.providers.alipay.AlipayAccount` validates)."""
    return {
        "app_id": DEV_APP_ID,
        "app_private_key": APP_PRIVATE_KEY,
        "alipay_public_key": ALIPAY_PUBLIC_KEY,
        "app_public_key": APP_PUBLIC_KEY,
        "api_base": base_url.rstrip("/"),
    }
