"""QR codes as inline SVG (no image files, nothing cached on disk)."""

import io

import qrcode
import qrcode.image.svg


def svg(text):
    """An SVG document drawing `text` as a QR code (error correction M: a
    printed slip survives a fold or a smudge)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2,
                         image_factory=qrcode.image.svg.SvgPathImage)
    code.add_data(text)
    code.make(fit=True)
    out = io.BytesIO()
    code.make_image().save(out)
    return out.getvalue().decode("utf-8")
