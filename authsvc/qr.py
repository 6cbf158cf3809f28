"""QR codes as inline SVG (no image files, nothing cached on disk)."""

import io

import qrcode
import qrcode.image.svg


def _image(text, border):
    # Error correction M: a printed slip survives a fold or a smudge.
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=border,
        image_factory=qrcode.image.svg.SvgPathImage,
    )
    code.add_data(text)
    code.make(fit=True)
    return code.make_image()


def svg(text, border=2):
    """An SVG document drawing `text` as a QR code."""
    out = io.BytesIO()
    _image(text, border).save(out)
    return out.getvalue().decode("utf-8")


def inline_svg(text, border=4):
    """The <svg> element alone, for a page (no XML declaration), hidden from
    screen readers (the page says in words what it holds). Border 4: the quiet
    zone printed codes need."""
    element = _image(text, border).to_string(encoding="unicode")
    element = element[element.index("<svg") :]
    return element.replace(
        "<svg ", '<svg aria-hidden="true" focusable="false" shape-rendering="crispEdges" ', 1
    )
