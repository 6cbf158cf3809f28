"""The block radiologists paste into the written report (the seed's put the QR
code in the report itself): the QR code, and beside it the address, the
patient ID and the password, as one PNG drawn here (Pillow), in memory only.

The text is in DejaVu (Debian's fonts-dejavu-core, in the Makefile's DEBS):
Pillow's own font has no accents ("Contraseña"). Without it the block is
still drawn, in Pillow's font."""

import io

import qrcode
from PIL import Image, ImageDraw, ImageFont

QR_BOX = 8  # pixels per module: sharp when the report is printed
TEXT_SIZE = 30
LABEL_SIZE = 22
MARGIN = 24
FONTS = "/usr/share/fonts/truetype/dejavu/"


def _font(name, size):
    try:
        return ImageFont.truetype(FONTS + name, size)
    except OSError:
        return ImageFont.load_default(size=size)


def _qr_image(text):
    # Error correction M, a quiet zone of 4: as on the printed slip.
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, box_size=QR_BOX
    )
    code.add_data(text)
    code.make(fit=True)
    return code.make_image(fill_color="black", back_color="white").get_image().convert("L")


def report_block_png(qr_text, labels, values):
    """The PNG bytes: the QR code of `qr_text`, then each label over its value."""
    code = _qr_image(qr_text)
    label_font = _font("DejaVuSans.ttf", LABEL_SIZE)
    # Monospaced and bold, as on the slip: every character of the password plain.
    text_font = _font("DejaVuSansMono-Bold.ttf", TEXT_SIZE)
    widths = [
        max(label_font.getlength(label), text_font.getlength(value))
        for label, value in zip(labels, values, strict=False)
    ]
    line = LABEL_SIZE + TEXT_SIZE + 24
    width = code.width + MARGIN + int(max(widths)) + MARGIN
    height = max(code.height, MARGIN + line * len(labels))
    image = Image.new("L", (width, height), 255)
    image.paste(code, (0, (height - code.height) // 2))
    draw = ImageDraw.Draw(image)
    y = (height - line * len(labels)) // 2 + 6
    for label, value in zip(labels, values, strict=False):
        draw.text((code.width + MARGIN, y), label, fill=90, font=label_font)
        draw.text((code.width + MARGIN, y + LABEL_SIZE + 4), value, fill=0, font=text_font)
        y += line
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
