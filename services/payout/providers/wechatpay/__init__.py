"""WeChat Pay (APIv3, direct merchant): a tenant's own merchant account as a payout route.

account (credentials, validated), signing (APIv3's cryptography), client (the route),
callbacks (refund notifications), settlement (the REFUND bill). The emulator is
sandbox/wechatpay (sandbox/WECHATPAY.md).
"""

from services.payout.providers.base import CallbackAnswer, ProviderSpec
from services.payout.providers.wechatpay.account import WeChatPayAccount
from services.payout.providers.wechatpay.callbacks import WeChatPayCallbacks
from services.payout.providers.wechatpay.client import WeChatPayRoute
from services.payout.providers.wechatpay.settlement import parse

PROVIDER = ProviderSpec(
    name="wechatpay",
    methods=frozenset({"wechat_pay"}),
    account=WeChatPayAccount,
    route=WeChatPayRoute,
    callbacks=WeChatPayCallbacks,
    parse_settlement=parse,
    # The docs: answer 200 or 204 with no body; anything else and WeChat Pay retries.
    answer=CallbackAnswer(204, "application/json", b""),
)

__all__ = ["PROVIDER", "WeChatPayAccount", "WeChatPayCallbacks", "WeChatPayRoute", "parse"]
